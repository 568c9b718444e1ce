/**
 * `webhook:URL` (SPEC §4.3): the event POSTed as JSON (the StoreEvent, as `snaplog --json
 * events` prints it) with node's fetch. A 2xx answer is success; any other status (a redirect
 * too: it is not followed, a POST must not turn into something else), no answer within the
 * timeout, or a network error is a failure. The answer's body is read only up to
 * RESPONSE_BODY_BYTES_MAX (for the event's message), so an endpoint cannot make us hold much.
 */
import type { StoreEvent } from "../store/event-log.js";
import { VERSION } from "../util/version.js";
import { errorMessage } from "./runner-context.js";

export const RESPONSE_BODY_BYTES_MAX = 1024;

export interface WebhookOptions {
  timeoutMs: number;
  /** Aborted: the server stops; the request is cancelled. */
  signal: AbortSignal;
}

export interface WebhookResult {
  /** The answer's status, or null when none came. */
  httpStatus: number | null;
  ok: boolean;
  /** Why there was no answer, or the start of a failing answer's body. */
  detail: string;
}

export async function postWebhook(url: URL, event: StoreEvent, options: WebhookOptions): Promise<WebhookResult> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error(`no answer within ${options.timeoutMs} ms`)), options.timeoutMs);
  const onStop = (): void => controller.abort(new Error("the server is stopping"));
  options.signal.addEventListener("abort", onStop, { once: true });
  if (options.signal.aborted) onStop();
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", "user-agent": `snaplog/${VERSION}` },
      body: JSON.stringify(event),
      redirect: "manual",
      signal: controller.signal,
    });
    const ok = response.status >= 200 && response.status < 300;
    const body = await readStart(response, ok ? 0 : RESPONSE_BODY_BYTES_MAX);
    return { httpStatus: response.status, ok, detail: body };
  } catch (error) {
    const reason = controller.signal.aborted ? controller.signal.reason : error;
    return { httpStatus: null, ok: false, detail: describeFetchError(reason) };
  } finally {
    clearTimeout(timer);
    options.signal.removeEventListener("abort", onStop);
  }
}

/** The first `bytesMax` bytes of the body as text; the rest is not read (the stream is cancelled). */
async function readStart(response: Response, bytesMax: number): Promise<string> {
  if (response.body === null) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  try {
    while (bytes < bytesMax) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      bytes += value.length;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks).subarray(0, bytesMax).toString("utf8");
}

/** fetch says "fetch failed" and puts the reason (ECONNREFUSED, ...) in `cause`. */
function describeFetchError(error: unknown): string {
  const cause = error instanceof Error ? error.cause : undefined;
  return cause === undefined ? errorMessage(error) : `${errorMessage(error)}: ${errorMessage(cause)}`;
}
