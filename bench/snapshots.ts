/**
 * Makes a disk with many snapshots for the snapshot-read scenario: before each snapshot a few
 * random 4 KiB writes (pipelined on one NBD connection), so that every snapshot cuts a different
 * log position; the snapshots go through the running server's API (ApiClient, in-process),
 * far faster than one CLI process per snapshot.
 */
import { randomFillSync } from "node:crypto";
import type { ApiClient } from "../src/api/client.js";
import { NbdWriter } from "./nbd-client.js";

export interface SnapshotBuild {
  names: string[];
  seconds: number;
  writtenBlocks: number;
}

const BLOCK_BYTES = 4096;

/** xorshift32: the same offsets on every run. */
function prng(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state;
  };
}

export async function createSnapshotsWithWrites(options: {
  api: ApiClient;
  nbdSocket: string;
  disk: string;
  count: number;
  writesPerSnapshot: number;
  workingSetBytes: number;
  progress: (message: string) => void;
}): Promise<SnapshotBuild> {
  const { api, disk, count, writesPerSnapshot } = options;
  const blocks = Math.floor(options.workingSetBytes / BLOCK_BYTES);
  const next = prng(0x5eed1234);
  const pool = Buffer.alloc(BLOCK_BYTES * 64);
  randomFillSync(pool);
  const width = Math.max(4, String(count).length);
  const names: string[] = [];
  let writtenBlocks = 0;
  const started = process.hrtime.bigint();
  const writer = writesPerSnapshot > 0 ? await NbdWriter.connect(options.nbdSocket, disk) : undefined;
  try {
    for (let index = 1; index <= count; index++) {
      if (writer !== undefined) {
        const writes = Array.from({ length: writesPerSnapshot }, () => {
          const lba = next() % blocks;
          const poolIndex = next() % 64;
          return { offsetBytes: lba * BLOCK_BYTES, data: pool.subarray(poolIndex * BLOCK_BYTES, (poolIndex + 1) * BLOCK_BYTES) };
        });
        await writer.writeMany(writes);
        writtenBlocks += writes.length;
      }
      const name = `s${String(index).padStart(width, "0")}`;
      await api.createSnapshot({ disk, name });
      names.push(name);
      if (index % 100 === 0 || index === count) options.progress(`${index}/${count} snapshots`);
    }
    await writer?.flush();
  } finally {
    await writer?.close();
  }
  return { names, seconds: Number(process.hrtime.bigint() - started) / 1e9, writtenBlocks };
}
