/** Failures of the network (the endpoint is down, a connection was cut, a timeout), shared by the S3 and appliance vaults. */

const networkErrorCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_CLOSED",
]);
const networkErrorNames = new Set(["TimeoutError", "RequestTimeout", "AbortError"]);

/**
 * A one-line description of the network failure inside `error` (following `cause` and
 * AggregateError, as fetch and happy-eyeballs connects wrap them), or undefined when it is
 * not one: "connect ECONNREFUSED 127.0.0.1:7480".
 */
export function networkProblem(error: unknown): string | undefined {
  // Breadth-first over causes, innermost-first by depth: the deepest network error names the socket.
  let found: string | undefined;
  let layer: unknown[] = [error];
  for (let depth = 0; depth < 5 && layer.length > 0; depth += 1) {
    const next: unknown[] = [];
    for (const item of layer) {
      if (item === null || typeof item !== "object") continue;
      const { cause, errors } = item as { cause?: unknown; errors?: unknown };
      found = describeNetworkError(item) ?? found;
      if (cause !== undefined) next.push(cause);
      if (Array.isArray(errors) && errors.length > 0) next.push(errors[0]);
    }
    layer = next;
  }
  return found;
}

function describeNetworkError(error: object): string | undefined {
  const { code, name, message } = error as { code?: unknown; name?: unknown; message?: unknown };
  const text = typeof message === "string" && message !== "" ? message : String(code ?? name);
  if (typeof code === "string" && networkErrorCodes.has(code)) return text.includes(code) ? text : `${code}: ${text}`;
  if (typeof name === "string" && networkErrorNames.has(name)) return `${name}: ${text}`;
  return undefined;
}
