/**
 * Streams of items as text: the API answers `log` and `diff` with NDJSON, and the CLI prints
 * the same streams (text or NDJSON) with the same batching (textBatches). Items are pulled
 * from the store's async iterator only as fast as the reader reads, so a huge log never sits
 * in memory, and a reader that goes away stops the producer.
 *
 *   first item pulled ──fails──▶ normal JSON error with the mapped status (nothing sent yet)
 *        │ ok
 *        ▼
 *   200 application/x-ndjson: one item per line ──fails midway──▶ final {"error": ...} line
 */
import { Readable } from "node:stream";
import type { FastifyBaseLogger, FastifyReply } from "fastify";
import { ndjsonContentType, ndjsonLine } from "./ndjson.js";
import { failureOf } from "./http-status.js";

/** Text is gathered into batches of about this size: one write per line would make a long log slow. */
const batchBytesMax = 64 * 1024;
/** A batch goes out once its first text is this old, so a slow stream still shows its lines soon. */
export const batchAgeMsMax = 50;

/**
 * `waitForFirst: false` answers at once (a followed stream may have nothing to say for hours);
 * then only an error thrown before the call gets its own status.
 */
export async function sendItemStream(
  reply: FastifyReply,
  items: AsyncIterable<unknown>,
  options: { waitForFirst?: boolean } = {},
): Promise<FastifyReply> {
  const iterator = items[Symbol.asyncIterator]();
  // Pulled before anything is sent: NOT_FOUND, OUTSIDE_WINDOW and bad arguments still get their status.
  const first = options.waitForFirst === false ? undefined : await iterator.next();
  const batches = textBatches(iterator, {
    format: (item) => [ndjsonLine(item)],
    first,
    failureText: (error) => failureLine(error, reply.log),
    onReturnError: (error) => reply.log.warn({ err: error }, "closing a stream's reader failed"),
  });
  return reply
    .code(200)
    .header("content-type", ndjsonContentType)
    .send(Readable.from(batches, { objectMode: false }));
}

/** The final {"error": ...} line of a stream that failed midway (its status is 200 by then). */
function failureLine(error: unknown, log: FastifyBaseLogger): string {
  const failure = failureOf(error);
  log[failure.logLevel]({ err: error }, "stream failed");
  return ndjsonLine(failure.body);
}

export interface TextBatchOptions<T> {
  /** The text of one item, in pieces (a long item need not become one string). */
  format(item: T): Iterable<string>;
  /** The first step, when the caller pulled it already. */
  first?: IteratorResult<T>;
  /** Text that ends the stream after a failure midway; without it the text so far is yielded, then the error thrown. */
  failureText?(error: unknown): string;
  /** Returning the items' iterator failed (after the reader went away); the default ignores it. */
  onReturnError?(error: unknown): void;
}

const late = Symbol("late");

/**
 * The text of `items` in batches: one is yielded when it reaches batchBytesMax, when its first
 * text has waited batchAgeMsMax (the wait for the next item is raced against a timer, so a
 * slow producer never holds a line back for longer), and at the end. A consumer that stops
 * early (Fastify destroys the body when the client goes away; the CLI's pipeline on EPIPE)
 * returns this generator, whose finally returns the items' iterator, so the store closes
 * the files it reads.
 */
export async function* textBatches<T>(items: AsyncIterator<T>, options: TextBatchOptions<T>): AsyncGenerator<string> {
  let batch = "";
  let timer: NodeJS.Timeout | undefined;
  let aged: Promise<typeof late> | undefined;
  let next: Promise<IteratorResult<T>> | undefined = options.first === undefined ? undefined : Promise.resolve(options.first);
  let finished = false;
  const startAge = (): void => {
    aged = new Promise((resolve) => (timer = setTimeout(resolve, batchAgeMsMax, late)));
  };
  const takeBatch = (): string => {
    clearTimeout(timer);
    aged = undefined;
    const taken = batch;
    batch = "";
    return taken;
  };
  try {
    for (;;) {
      next ??= items.next();
      const step = aged === undefined ? await next : await Promise.race([next, aged]);
      if (step === late) {
        yield takeBatch();
        continue;
      }
      next = undefined;
      if (step.done === true) {
        finished = true;
        break;
      }
      for (const text of options.format(step.value)) {
        if (batch.length === 0) startAge();
        batch += text;
        if (batch.length >= batchBytesMax) yield takeBatch();
      }
    }
  } catch (error) {
    if (options.failureText === undefined) {
      if (batch.length > 0) yield takeBatch();
      throw error;
    }
    batch += options.failureText(error);
  } finally {
    clearTimeout(timer);
    if (!finished) {
      try {
        await items.return?.();
      } catch (error) {
        options.onReturnError?.(error);
      }
    }
  }
  if (batch.length > 0) yield takeBatch();
}
