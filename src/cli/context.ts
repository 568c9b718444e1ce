/**
 * What every command shares: the global options, the way to reach the store, and the two
 * shapes of a command's run. A command goes through the running server's API when one
 * answers on the store's socket (SPEC §2 "One owner"), else it opens the store directly and
 * closes it when done.
 *
 *   runOperation: one request, one result; a progress bar on a terminal when asked for;
 *                 --json prints the result as JSON, else the command's text.
 *   runStream:    items streamed (log, diff); --json prints NDJSON, else the command's lines.
 */
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Command } from "commander";
import { ApiClient } from "../api/client.js";
import { textBatches } from "../api/item-stream.js";
import { ndjsonLine } from "../api/ndjson.js";
import type { Operations, ProgressCallback } from "../store/operations/index.js";
import { Store } from "../store/store.js";
import { printJson } from "./output.js";
import { startProgress, type ProgressOptions } from "./progress.js";

export const defaultStoreDirectory = "./snaplog-data";

export interface GlobalOptions {
  /** Absolute path of the store directory. */
  storePath: string;
  json: boolean;
}

export function globalOptions(command: Command): GlobalOptions {
  const options = command.optsWithGlobals<{ store?: string; json?: boolean }>();
  const store = options.store ?? process.env.SNAPLOG_STORE ?? defaultStoreDirectory;
  return { storePath: path.resolve(store === "" ? defaultStoreDirectory : store), json: options.json === true };
}

export async function withOperations<T>(storePath: string, action: (operations: Operations) => Promise<T>): Promise<T> {
  const client = await ApiClient.connectIfRunning(storePath);
  if (client !== undefined) return action(client);
  const store = await Store.open(storePath, { mode: "direct" });
  try {
    return await action(store);
  } finally {
    await store.close();
  }
}

export interface Operation<T> {
  run(operations: Operations, onProgress: ProgressCallback): Promise<T>;
  /** The result for people (without --json). */
  print(result: T): void;
  /** A progress bar on a terminal (never with --json). */
  progress?: ProgressOptions;
}

/** Runs one operation and prints its result; returns it (scrub turns it into its exit status). */
export async function runOperation<T>(command: Command, operation: Operation<T>): Promise<T> {
  const { storePath, json } = globalOptions(command);
  const progress = startProgress(operation.progress, json);
  let result: T;
  try {
    result = await withOperations(storePath, (operations) => operation.run(operations, progress.onProgress));
  } finally {
    progress.stop();
  }
  if (json) printJson(result);
  else operation.print(result);
  return result;
}

export interface ItemStream<T> {
  items(operations: Operations): AsyncIterable<T>;
  /** The lines of one item for people (without --json), without newlines. */
  lines(item: T): Iterable<string>;
  /** Lines after the last item for people (a summary), when the stream ended normally. */
  endLines?(): Iterable<string>;
}

/**
 * Streams items to stdout in constant memory: NDJSON with --json, else the command's lines,
 * batched as the API batches them (textBatches). A reader that goes away (`snaplog log | head`)
 * is no error: the command stops reading, which also ends its stream from the server, and
 * exits 0. A failure midway shows the lines before it, then the error.
 */
export async function runStream<T>(command: Command, stream: ItemStream<T>): Promise<void> {
  const { storePath, json } = globalOptions(command);
  const format = json ? (item: T) => [ndjsonLine(item)] : (item: T) => withNewlines(stream.lines(item));
  await withOperations(storePath, async (operations) => {
    const items = stream.items(operations)[Symbol.asyncIterator]();
    async function* text(): AsyncGenerator<string> {
      yield* textBatches(items, { format });
      if (!json && stream.endLines !== undefined) yield* withNewlines(stream.endLines());
    }
    await writeToStdout(text());
  });
}

function* withNewlines(lines: Iterable<string>): Generator<string> {
  for (const line of lines) yield `${line}\n`;
}

/** pipeline handles backpressure; an error of the text is thrown, one of stdout (EPIPE) ends quietly. */
async function writeToStdout(text: AsyncIterable<string>): Promise<void> {
  let failure: { error: unknown } | undefined;
  async function* watched(): AsyncGenerator<string> {
    try {
      yield* text;
    } catch (error) {
      failure = { error };
      throw error;
    }
  }
  try {
    await pipeline(Readable.from(watched(), { objectMode: false }), process.stdout);
  } catch {
    if (failure !== undefined) throw failure.error;
    // Writing failed: the reader went away (EPIPE) or stdout is closed; nobody gets the rest.
  }
}
