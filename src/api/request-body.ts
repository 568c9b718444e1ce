/**
 * A streamed request body (an archive stream, a replication batch) as the store reads it. The
 * store stops reading at the first bad byte and closes what it reads; closing must not destroy
 * the request, or the socket goes with it and the refusal never reaches the client (it waits
 * for its timeout instead). So the store gets chunks without the request's return(), and once
 * the answer is decided the rest of the body is read and dropped (bounded by the server's
 * request timeouts), keeping the connection usable.
 */
import type { Readable } from "node:stream";

export function bodyChunks(body: Readable): AsyncIterable<Buffer> {
  const iterator = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  return {
    [Symbol.asyncIterator]: () => ({
      next: () => iterator.next(),
      // Stop here; the request is drained by drainBody, not destroyed.
      return: async () => ({ done: true, value: undefined }),
    }),
  };
}

/** Reads what is left of the body and drops it. */
export function drainBody(body: Readable): void {
  if (!body.readableEnded) body.resume();
}
