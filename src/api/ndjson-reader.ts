/**
 * Reads an NDJSON body as it arrives: one parsed JSON value per line, pulled from the
 * response only as fast as the consumer asks (the socket's flow control does the rest), so a
 * long log never piles up in memory. A consumer that stops early (break, return, throw)
 * destroys the response, which closes the connection and tells the server to stop reading.
 *
 * There is no deadline for the whole stream, which may run for hours; instead it fails when
 * no bytes arrive for `idleMs` while the consumer is waiting for the next line.
 */
import type { Readable } from "node:stream";
import { ErrorCodes, SnaplogError } from "../util/errors.js";

export interface NdjsonReadOptions {
  idleMs: number;
  /** A longer line is refused: a broken server must not make the client grow without bound. */
  lineBytesMax: number;
  /** The error the stream is destroyed with when it stayed idle. */
  idleError: () => Error;
}

const newline = 0x0a;

export async function* readNdjson(stream: Readable, options: NdjsonReadOptions): AsyncGenerator<unknown> {
  const chunks: AsyncIterator<Buffer> = stream[Symbol.asyncIterator]();
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  try {
    for (;;) {
      const step = await nextWithin(chunks, stream, options);
      if (step.done === true) break;
      const chunk = step.value;
      let start = 0;
      for (let end = chunk.indexOf(newline, start); end !== -1; end = chunk.indexOf(newline, start)) {
        // A line inside one chunk is used in place; only one split across chunks is copied.
        let line = chunk.subarray(start, end);
        if (pending.length > 0) {
          pending.push(line);
          line = Buffer.concat(pending);
          pending = [];
          pendingBytes = 0;
        }
        start = end + 1;
        if (line.length > 0) yield parseLine(line);
      }
      if (start < chunk.length) {
        pending.push(chunk.subarray(start));
        pendingBytes += chunk.length - start;
        if (pendingBytes > options.lineBytesMax) throw invalidStream(`a line of the server's answer exceeds ${options.lineBytesMax} bytes`);
      }
    }
    if (pendingBytes > 0) throw invalidStream("the server's answer ends in the middle of a line");
  } finally {
    // Returning a stream's iterator destroys the stream: the connection closes.
    await chunks.return?.();
  }
}

/** The next chunk, or the stream destroyed with idleError when none comes within idleMs. */
async function nextWithin(chunks: AsyncIterator<Buffer>, stream: Readable, options: NdjsonReadOptions): Promise<IteratorResult<Buffer>> {
  const timer = setTimeout(() => stream.destroy(options.idleError()), options.idleMs);
  try {
    return await chunks.next();
  } finally {
    clearTimeout(timer);
  }
}

function parseLine(line: Buffer): unknown {
  try {
    return JSON.parse(line.toString("utf8"));
  } catch {
    throw invalidStream("the server sent a line that is not JSON");
  }
}

function invalidStream(message: string): SnaplogError {
  return new SnaplogError(ErrorCodes.INTERNAL, message);
}
