/**
 * Calls to the appliance's API from the page. On TCP every call carries the bearer token the
 * user gave once (kept for this browser tab only, in sessionStorage); on the unix socket none
 * is needed. Refusals become ApiError with the server's own message and hint, which the page
 * shows as they are.
 */
const TOKEN_KEY = "snaplog.token";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

export function savedToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function saveToken(token: string | null): void {
  if (token === null) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, token);
}

function headers(body: unknown): HeadersInit {
  const result: Record<string, string> = {};
  const token = savedToken();
  if (token !== null) result.authorization = `Bearer ${token}`;
  if (body !== undefined) result["content-type"] = "application/json";
  return result;
}

async function errorOf(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => "");
  try {
    const { error } = JSON.parse(text) as { error?: { code?: string; message?: string; hint?: string } };
    if (error?.message !== undefined) return new ApiError(response.status, error.code ?? "ERROR", error.message, error.hint);
  } catch {
    // not JSON: fall through to the status line
  }
  return new ApiError(response.status, "HTTP", `${response.status} ${response.statusText}`.trim());
}

export async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(path, { method, headers: headers(body), body: body === undefined ? undefined : JSON.stringify(body) });
  if (!response.ok) throw await errorOf(response);
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

/** Reads an NDJSON answer line by line; a final {"error": ...} line is thrown. Ends when the answer does or the signal aborts. */
export async function readLines(
  method: string,
  path: string,
  body: unknown,
  onLine: (line: unknown) => void,
  signal?: AbortSignal,
): Promise<void> {
  const response = await fetch(path, {
    method,
    headers: headers(body),
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  if (!response.ok) throw await errorOf(response);
  if (response.body === null) return;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    pending += value;
    let newline = pending.indexOf("\n");
    while (newline >= 0) {
      const text = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      if (text.trim() !== "") {
        const line = JSON.parse(text) as { error?: { code?: string; message: string; hint?: string } };
        if (line.error !== undefined) throw new ApiError(200, line.error.code ?? "ERROR", line.error.message, line.error.hint);
        onLine(line);
      }
      newline = pending.indexOf("\n");
    }
  }
}

export interface Progress {
  done: number;
  total: number;
}

/** A long-running operation (compact, restore, archive): its progress lines, then its result. */
export async function callWithProgress<T>(path: string, body: unknown, onProgress: (progress: Progress) => void): Promise<T> {
  let result: T | undefined;
  await readLines("POST", path, body, (line) => {
    const { progress, result: answer } = line as { progress?: Progress; result?: T };
    if (progress !== undefined) onProgress(progress);
    if (answer !== undefined) result = answer;
  });
  if (result === undefined) throw new ApiError(200, "ERROR", "the answer ended without a result");
  return result;
}

export const encode = encodeURIComponent;
