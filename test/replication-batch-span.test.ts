/**
 * Goal: a continuous batch holds at most BATCH_SPAN_MS of the source's writes (and at most
 * BATCH_ENTRIES_MAX entries): a batch is acknowledged whole, so its oldest write waits for its
 * newest, and a backlog of large batches in flight was the lag whenever the sender fell behind.
 * Method: a real engine whose clock the test moves, writes at known times, and where batches
 * from several points end.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { DirectoryMedium, DiskEngine } from "../src/engine/index.js";
import { BATCH_ENTRIES_MAX, BATCH_SPAN_MS, continuousBatchEnd } from "../src/store/replication/relations.js";
import { tempDir } from "./support/temp-dir.js";

const BLOCK_BYTES = 512;

test("a continuous batch ends after BATCH_SPAN_MS of writes or BATCH_ENTRIES_MAX entries, where the source can pin it", async () => {
  assert.equal(BATCH_SPAN_MS, 200, "the figures below assume 200 ms");
  let now = Date.UTC(2026, 0, 1);
  const medium = new DirectoryMedium(tempDir("batch-span"));
  await DiskEngine.create(medium);
  const engine = await DiskEngine.open(
    medium,
    { name: "span", sizeBytes: 8192 * BLOCK_BYTES, blockSizeBytes: BLOCK_BYTES, historySeconds: 3600 },
    {},
    { clock: () => now },
  );
  try {
    // LSN i + 1 written at 50 × i ms, then 5,000 blocks at once.
    for (let index = 0; index <= 20; index++) {
      await engine.writeBytes(index * BLOCK_BYTES, Buffer.alloc(BLOCK_BYTES, index + 1), false);
      now += 50;
    }
    await engine.writeBytes(100 * BLOCK_BYTES, Buffer.alloc(5000 * BLOCK_BYTES, 7), false);
    const lsnLast = engine.lsnLast;
    assert.equal(lsnLast, 5021);
    assert.equal(continuousBatchEnd(engine, 0, lsnLast), 5, "from LSN 1 (0 ms): the writes up to 200 ms");
    assert.equal(continuousBatchEnd(engine, 5, lsnLast), 10, "from LSN 6 (250 ms): up to 450 ms");
    assert.equal(continuousBatchEnd(engine, 20, lsnLast), 20 + BATCH_ENTRIES_MAX, "written at once: at most BATCH_ENTRIES_MAX");
    assert.equal(continuousBatchEnd(engine, 20 + BATCH_ENTRIES_MAX, lsnLast), lsnLast, "the rest, to the log's end");
    assert.equal(continuousBatchEnd(engine, 3, 4), 4, "one entry left");
    assert.equal(continuousBatchEnd(engine, 0, 3), 3, "within the span: to the end given");
  } finally {
    await engine.close();
  }
  // Without a history window only the log's end is a view: one batch to it.
  const windowless = {
    timeOfLsn: () => 1,
    lsnAtTime: () => 1,
    checkViewAvailable: () => {
      throw new Error("no view there");
    },
  };
  assert.equal(continuousBatchEnd(windowless, 0, 9000), 9000);
});
