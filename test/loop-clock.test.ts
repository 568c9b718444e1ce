/**
 * Goal: a continuous relation paces itself by its own time on the event loop (util/loop-clock.ts),
 * so that clock must count the synchronous sections it times, each once, and not the time the
 * work waits; and timing an export must not change a byte of what it writes. Method: a clock
 * driven by a fake time source that the timed work advances (no timings, so nothing here
 * depends on how busy the machine is); a real store exported with and without a clock.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { LoopClock } from "../src/util/loop-clock.js";
import { Store } from "../src/store/store.js";
import { runCli } from "./support/cli.js";
import { tempDir } from "./support/temp-dir.js";
import { pattern } from "./support/data-pattern.js";

test("the loop clock counts what its sections run, nested sections once, and not the waits between", async () => {
  let now = 1000;
  const clock = new LoopClock(Infinity, () => now);
  const run = (ms: number) => {
    now += ms;
  };
  clock.time(() => {
    run(3);
    clock.time(() => run(4));
    run(1);
  });
  assert.equal(clock.ms, 8, "the outer section's time, the inner one inside it counted once");
  run(100);
  assert.equal(clock.ms, 8, "time outside any section is not counted");
  // An async section: only its part up to the first await is its own (what runs after belongs to a later turn).
  const pending = clock.time(async () => {
    run(2);
    await new Promise((resolve) => setImmediate(resolve));
    run(50);
  });
  await pending;
  assert.equal(clock.ms, 10, "the wait and what ran after it are not counted");
  assert.throws(() =>
    clock.time(() => {
      run(5);
      throw new Error("failed");
    }),
  );
  assert.equal(clock.ms, 15, "a section that throws is counted");
  clock.time(() => run(1));
  assert.equal(clock.ms, 16, "and counting goes on after it (no section left open)");
  const capped = new LoopClock(5, () => now);
  capped.time(() => run(3));
  capped.time(() => run(40));
  assert.equal(capped.ms, 8, "with a section maximum, a longer section counts that much");
});

test("an export timed by a loop clock writes the same bytes, and the clock counts its work", async () => {
  const directory = tempDir("loop-clock");
  runCli(["--store", directory, "init"]);
  const store = await Store.open(directory, { mode: "direct" });
  try {
    await store.createDisk({ name: "d", sizeBytes: 8 * 1024 * 1024 });
    const volume = store.resolve("d");
    for (let index = 0; index < 300; index++) {
      const lba = (index * 37) % 2000;
      await volume.write(lba * 4096, pattern(index + 1, (1 + (index % 4)) * 4096), { fua: false });
      if (index === 150) await store.createSnapshot({ disk: "d", name: "half" });
    }
    const request = {
      disk: "d",
      fromLsn: 0,
      to: `lsn:${(await store.showDisk("d")).lsnLast}`,
      streamId: "fixed",
      createdMs: 1,
      cutTo: false,
    };
    const collect = async (clock?: LoopClock, hashOffThread = false) => {
      const chunks: Buffer[] = [];
      await store.exportStream(request, async (chunk) => void chunks.push(Buffer.from(chunk)), undefined, {
        loopClock: clock,
        hashOffThread,
      });
      return Buffer.concat(chunks);
    };
    const plain = await collect();
    const clock = new LoopClock();
    assert.ok(plain.equals(await collect(clock)), "the same stream with a clock");
    assert.ok(plain.equals(await collect(new LoopClock(), true)), "the same stream with a clock, hashed off the thread");
    assert.ok(clock.ms > 0, "the export's steps were counted");
  } finally {
    await store.close();
  }
});
