/**
 * Micro benchmark: the cost of CRC32C (src/util/crc32c.ts) on one 4 KiB block, next to a
 * 4 KiB memcpy (Buffer.copy). The runner sets it against the server CPU time per request of
 * the 4 KiB random-write job to get the CRC32C share of a 4 KiB write.
 * Runs in about `budgetMs` (default 3 s). Also runnable alone: node dist/bench/crc32c.js
 */
import { randomFillSync } from "node:crypto";
import { fileURLToPath } from "node:url";
import { crc32c as portableCrc32c } from "@node-rs/crc32";
import { crc32c, crc32cImplementation } from "../src/util/crc32c.js";

export interface Crc32cResult {
  /** Median over rounds, nanoseconds per 4 KiB. */
  crc32cNsPer4k: number;
  memcpyNsPer4k: number;
  /** crc32c throughput, GB/s (10^9 bytes). */
  crc32cGbPerS: number;
  /** The native CRC32C the server loaded (src/util/crc32c.ts). */
  implementation: string;
  /** @node-rs/crc32, the fallback, in the same rounds: the loaded one's gain. */
  portableNsPer4k: number;
  rounds: number;
  blocksPerRound: number;
}

const BLOCK_BYTES = 4096;
/** 256 distinct blocks (1 MiB): warm in cache, like a just-received request. */
const BLOCK_COUNT = 256;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Nanoseconds per call of `body(index)` over `iterations` calls. */
function timeLoop(iterations: number, body: (index: number) => number): { nsPerOp: number; sink: number } {
  let sink = 0;
  const start = process.hrtime.bigint();
  for (let index = 0; index < iterations; index++) sink ^= body(index);
  const elapsed = Number(process.hrtime.bigint() - start);
  return { nsPerOp: elapsed / iterations, sink };
}

export function runCrc32cBench(budgetMs = 3000): Crc32cResult {
  const source = Buffer.alloc(BLOCK_BYTES * BLOCK_COUNT);
  randomFillSync(source);
  const blocks = Array.from({ length: BLOCK_COUNT }, (_, index) => source.subarray(index * BLOCK_BYTES, (index + 1) * BLOCK_BYTES));
  const target = Buffer.alloc(BLOCK_BYTES);
  const crcBody = (index: number): number => crc32c(blocks[index & (BLOCK_COUNT - 1)]);
  const portableBody = (index: number): number => portableCrc32c(blocks[index & (BLOCK_COUNT - 1)]);
  const copyBody = (index: number): number => {
    blocks[index & (BLOCK_COUNT - 1)].copy(target);
    return target[index & (BLOCK_BYTES - 1)];
  };

  // Warm up (JIT, native binding) and size a round at ~1/10 of the budget per kind.
  timeLoop(20_000, crcBody);
  timeLoop(20_000, copyBody);
  timeLoop(20_000, portableBody);
  const probe = timeLoop(50_000, crcBody).nsPerOp + timeLoop(50_000, copyBody).nsPerOp;
  const rounds = 5;
  const blocksPerRound = Math.max(10_000, Math.floor((budgetMs * 1e6) / rounds / probe));
  const crcTimes: number[] = [];
  const copyTimes: number[] = [];
  const portableTimes: number[] = [];
  let sink = 0;
  for (let round = 0; round < rounds; round++) {
    const crc = timeLoop(blocksPerRound, crcBody);
    const copy = timeLoop(blocksPerRound, copyBody);
    const portable = timeLoop(blocksPerRound, portableBody);
    crcTimes.push(crc.nsPerOp);
    portableTimes.push(portable.nsPerOp);
    copyTimes.push(copy.nsPerOp);
    sink ^= crc.sink ^ copy.sink ^ portable.sink;
  }
  if (sink === 0x5eed) process.stderr.write(""); // keeps the results observable
  const crc32cNsPer4k = median(crcTimes);
  return {
    crc32cNsPer4k,
    memcpyNsPer4k: median(copyTimes),
    crc32cGbPerS: BLOCK_BYTES / crc32cNsPer4k,
    implementation: crc32cImplementation,
    portableNsPer4k: median(portableTimes),
    rounds,
    blocksPerRound,
  };
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const result = runCrc32cBench();
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
