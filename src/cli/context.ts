/**
 * What every command shares: the global options, and the way to reach the store. A command
 * goes through the running server's API when one answers on the store's socket (SPEC §2
 * "One owner"), else it opens the store directly and closes it when done.
 */
import path from "node:path";
import type { Command } from "commander";
import { ApiClient } from "../api/client.js";
import type { Operations } from "../store/operations.js";
import { Store } from "../store/store.js";

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
