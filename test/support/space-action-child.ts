/**
 * A process that runs the store's space and history policies at once, for the crash test
 * (test/crash-space-history.test.ts) to SIGKILL at any moment: it opens the store as the server
 * does, starts the background work (the history cap applies at once: its count is unknown after
 * an open), prints "ready", then runs one space check with the file system measured as 99 % used
 * — so every disk's space action runs until nothing is left — and prints "done".
 *
 *   node space-action-child.js STORE
 */
import { Store } from "../../src/store/store.js";

const storePath = process.argv[2];
const store = await Store.open(storePath, { mode: "server" });
store.startBackgroundCompaction({ intervalMs: 3_600_000 });
process.stdout.write("ready\n");
await store.checkSpace(async () => ({ usedBytes: 99, availableBytes: 1 }));
process.stdout.write("done\n");
await store.close();
