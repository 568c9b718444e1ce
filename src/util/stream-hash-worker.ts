/**
 * The worker behind stream-hash.ts: one SHA-256 per stream id, fed in the order the chunks were
 * sent; counts the bytes it has hashed in the shared counter it is given first.
 */
import { createHash, type Hash } from "node:crypto";
import { parentPort } from "node:worker_threads";
import type { StreamHashAnswer, StreamHashMessage } from "./stream-hash.js";

const hashes = new Map<number, Hash>();
let hashed: Int32Array | undefined;

parentPort?.on("message", (message: StreamHashMessage | Int32Array) => {
  if (message instanceof Int32Array) {
    hashed = message;
    return;
  }
  if (message.op === "update") {
    let hash = hashes.get(message.id);
    if (hash === undefined) hashes.set(message.id, (hash = createHash("sha256")));
    hash.update(message.chunk);
    if (hashed !== undefined) {
      Atomics.add(hashed, 0, message.chunk.length);
      Atomics.notify(hashed, 0);
    }
    return;
  }
  const hash = hashes.get(message.id) ?? createHash("sha256");
  hashes.delete(message.id);
  if (message.op === "digest") parentPort?.postMessage({ id: message.id, digest: hash.digest() } satisfies StreamHashAnswer);
});
