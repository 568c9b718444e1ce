/**
 * Answers a route with an NDJSON stream of items from the store (`log`, `diff`), with
 * backpressure: items are pulled from the store's async iterator only as fast as the client
 * reads, so a huge log never sits in memory, and a client that disconnects stops the reader.
 *
 *   first item pulled ──fails──▶ normal JSON error with the mapped status (nothing sent yet)
 *        │ ok
 *        ▼
 *   200 application/x-ndjson: one item per line ──fails midway──▶ final {"error": ...} line
 */
import { Readable } from "node:stream";
import type { FastifyBaseLogger, FastifyReply } from "fastify";
import { asSnaplogError, errorLine, ndjsonContentType, ndjsonLine } from "./ndjson.js";
import { httpStatusByCode } from "./status.js";

/** Lines are gathered into writes of about this size: one write per line would make a long log slow. */
const batchBytesMax = 64 * 1024;
/** A batch is sent once its first line is this old, so a slow stream still shows its lines soon. */
const batchAgeMsMax = 50;

export async function sendItemStream(reply: FastifyReply, items: AsyncIterable<unknown>): Promise<FastifyReply> {
  const iterator = items[Symbol.asyncIterator]();
  // Pulled before anything is sent: NOT_FOUND, OUTSIDE_WINDOW and bad arguments still get their status.
  const first = await iterator.next();
  const body = Readable.from(lineBatches(first, iterator, reply.log), { objectMode: false });
  return reply.code(200).header("content-type", ndjsonContentType).send(body);
}

/**
 * The stream's text, in batches. Fastify destroys the body when the client goes away, which
 * returns this generator early; its finally then returns the store's iterator, so the store
 * closes the files it reads.
 */
async function* lineBatches(first: IteratorResult<unknown>, iterator: AsyncIterator<unknown>, log: FastifyBaseLogger): AsyncGenerator<string> {
  let batch = "";
  let batchStartedMs = 0;
  let step = first;
  try {
    while (step.done !== true) {
      if (batch.length === 0) batchStartedMs = performance.now();
      batch += ndjsonLine(step.value);
      if (batch.length >= batchBytesMax || performance.now() - batchStartedMs >= batchAgeMsMax) {
        yield batch;
        batch = "";
      }
      step = await iterator.next();
    }
  } catch (error) {
    const failure = asSnaplogError(error);
    if (httpStatusByCode[failure.code] >= 500) log.error({ err: error }, "stream failed");
    batch += errorLine(failure);
  } finally {
    if (step.done !== true) await iterator.return?.().catch((error: unknown) => log.warn({ err: error }, "closing a stream's reader failed"));
  }
  if (batch.length > 0) yield batch;
}
