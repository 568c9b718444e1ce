/**
 * A streamed request body (an archive stream, a replication batch) as the store reads it. The
 * store stops reading at the first bad byte and closes what it reads; closing must not destroy
 * the request, or the socket goes with it and the refusal never reaches the client (it waits
 * for its timeout instead). So the store gets chunks without the request's return(), and once
 * the answer is decided the rest of the body is read and dropped through the same iterator
 * (bounded by the server's request timeouts), keeping the connection usable. `resume()` would
 * not do: a stream with an async iterator attached listens for 'readable', and then resume()
 * does nothing; the client stays blocked sending and sees a reset when the server times out.
 */
import { Readable } from "node:stream";
import { invalidArgument } from "../util/errors.js";

export class StreamedBody {
  private readonly iterator: AsyncIterator<Buffer>;
  private readonly body: Readable;

  /** `body` as the route got it: a stream only for application/octet-stream (JSON arrives parsed, and is refused). */
  constructor(body: unknown) {
    if (!(body instanceof Readable)) throw invalidArgument("the body must be the stream itself, sent as application/octet-stream");
    this.body = body;
    this.iterator = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  /** The body's chunks; returning early stops reading but leaves the request open. */
  chunks(): AsyncIterable<Buffer> {
    return {
      [Symbol.asyncIterator]: () => ({
        next: () => this.iterator.next(),
        return: async () => ({ done: true, value: undefined }),
      }),
    };
  }

  /** Reads what is left of the body and drops it. */
  drain(): void {
    if (this.body.readableEnded) return;
    void (async () => {
      try {
        while (!(await this.iterator.next()).done);
      } catch {
        // The client went away: nothing left to drain.
      }
    })();
  }
}
