/**
 * Goal: the space policy's rules (store/space-policy.ts) and its clock (policy/space-monitor.ts)
 * on their own: a write that takes a new segment file triggers a check (no timer needed); once
 * use passes a mark, `space-high` is recorded and the steps go compaction first, then the oldest
 * snapshot of all the delete-oldest disks (the one taken first), until use is 5 points below the
 * mark (`space-normal`) or nothing is left (`space-exhausted`, once); a disk without the policy,
 * or one whose mark use did not pass, is left alone; df's Use% is used / (used + available),
 * rounded up.
 * Method: an in-process Store on real files with the monitor's statfs replaced by a function of
 * what the disks hold (so use is known exactly), the interval set to an hour so that only the
 * triggers under test run checks; the event log read back.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { SpaceMonitor } from "../src/policy/space-monitor.js";
import type { StoreEvent } from "../src/store/operations/index.js";
import { usePercent } from "../src/store/space-policy.js";
import { Store, type FileSystemUse, type SpaceCheckResult } from "../src/store/store.js";
import { tempDir } from "./support/temp-dir.js";
import { waitFor } from "./support/wait-for.js";

const MiB = 1024 * 1024;

async function spaceEvents(store: Store): Promise<StoreEvent[]> {
  const events: StoreEvent[] = [];
  for await (const event of store.readEvents({})) if (event.reason === "space" && event.type.startsWith("space")) events.push(event);
  return events;
}

/** "TYPE DISK [ACTION] [SNAPSHOT]" per space event, for comparing sequences. */
function describe(events: StoreEvent[]): string[] {
  return events.map((event) =>
    [event.type, event.disk, event.type === "space-action" ? event.details?.action : undefined, event.snapshot]
      .filter((part) => part !== undefined)
      .join(" "),
  );
}

async function write(store: Store, disk: string, offset: number, length: number): Promise<void> {
  const volume = store.resolve(disk);
  await volume.write(offset, Buffer.alloc(length, 7), { fua: false });
  await volume.flush();
  volume.release();
}

test("df's Use%: used / (used + available), rounded up", () => {
  assert.equal(usePercent({ usedBytes: 0, availableBytes: 100 }), 0);
  assert.equal(usePercent({ usedBytes: 60, availableBytes: 40 }), 60);
  assert.equal(usePercent({ usedBytes: 601, availableBytes: 399 }), 61, "60.1 % shows as 61 %");
  assert.equal(usePercent({ usedBytes: 0, availableBytes: 0 }), 0);
});

test("a new segment file triggers a check; compaction first, then the oldest snapshot of all, until 5 points below the mark", async () => {
  const storePath = join(tempDir("space-monitor"), "store");
  await Store.init(storePath);
  const store = await Store.open(storePath, { mode: "server" });
  // Until `full`, use is low; then 50 % plus 10 points per snapshot the two delete-oldest disks hold.
  let full = false;
  const snapshotsOf = (disk: string) =>
    store.list().filter((exported) => exported.name.startsWith(`${disk}@`) && !exported.name.endsWith("@baseline"));
  const useOf = (): FileSystemUse => {
    const points = full ? 50 + 10 * (snapshotsOf("a").length + snapshotsOf("b").length) : 10;
    return { usedBytes: points, availableBytes: 100 - points };
  };
  const checks: SpaceCheckResult[] = [];
  const monitor = new SpaceMonitor(store, {
    intervalMs: 3_600_000,
    measure: async () => useOf(),
    onChecked: (result) => checks.push(result),
  });
  try {
    for (const disk of ["a", "b", "other", "low", "fresh"]) await store.createDisk({ name: disk, sizeBytes: 4 * MiB, historySeconds: 0 });
    for (const disk of ["a", "b"]) await store.setPolicy({ disk, spaceHighPercent: 60, spaceAction: "delete-oldest" });
    await store.setPolicy({ disk: "low", spaceHighPercent: 95, spaceAction: "delete-oldest" });
    // Taken in this order: a1, b1, a2 (and snapshots of disks the policy must leave alone).
    for (const [disk, name] of [
      ["a", "a1"],
      ["b", "b1"],
      ["a", "a2"],
      ["other", "o1"],
      ["low", "l1"],
    ]) {
      await write(store, disk, 0, 4096);
      await store.createSnapshot({ disk, name });
      await sleep(3);
    }
    monitor.start();
    await waitFor("the check at start", () => checks.length === 1);
    assert.deepEqual(describe(await spaceEvents(store)), [], "use is low: nothing to do");

    full = true;
    // The first write to `fresh` takes its first segment file: that alone runs a check (the interval is an hour).
    await write(store, "fresh", 0, 4096);
    await waitFor("the check a new segment file triggers", () => checks.length === 2);
    assert.deepEqual(describe(await spaceEvents(store)), [
      "space-high a",
      "space-high b",
      "space-action a compact",
      "space-action b compact",
      "space-action a delete-oldest a1",
      "space-action b delete-oldest b1",
      "space-action a delete-oldest a2",
      "space-normal a",
      "space-normal b",
    ]);
    assert.deepEqual([checks[1].usePercentBefore, checks[1].usePercentAfter], [80, 50]);
    assert.deepEqual(
      checks[1].steps.map((step) => [step.usePercentBefore, step.usePercentAfter]),
      [
        [80, 80],
        [80, 80],
        [80, 70],
        [70, 60],
        [60, 50],
      ],
    );
    for (const [disk, left] of [
      ["a", 0],
      ["b", 0],
      ["other", 1],
      ["low", 1],
    ] as const)
      assert.equal(snapshotsOf(disk).length, left, `snapshots left on ${disk}`);
  } finally {
    await monitor.stop();
    await store.close();
  }
});

test("nothing left to act on: space-exhausted once, again only when the disk changed; space-normal 5 points below the mark", async () => {
  const storePath = join(tempDir("space-exhausted"), "store");
  await Store.init(storePath);
  const store = await Store.open(storePath, { mode: "server" });
  let percent = 90;
  try {
    await store.createDisk({ name: "c", sizeBytes: 4 * MiB, historySeconds: 0 });
    await store.setPolicy({ disk: "c", spaceHighPercent: 60, spaceAction: "compact" });
    const measure = async (): Promise<FileSystemUse> => ({ usedBytes: percent, availableBytes: 100 - percent });
    await write(store, "c", 0, 4096);
    await store.checkSpace(measure);
    assert.deepEqual(describe(await spaceEvents(store)), ["space-high c", "space-action c compact", "space-exhausted c"]);
    await store.checkSpace(measure);
    assert.equal((await spaceEvents(store)).length, 3, "the disk did not change: nothing new to try, nothing new to say");
    await write(store, "c", 4096, 4096);
    await store.checkSpace(measure);
    assert.deepEqual(describe((await spaceEvents(store)).slice(3)), ["space-action c compact", "space-exhausted c"]);
    percent = 56;
    await store.checkSpace(measure);
    assert.equal((await spaceEvents(store)).length, 5, "56 % is under the mark but not 5 points under: the episode goes on");
    percent = 55;
    await store.checkSpace(measure);
    assert.deepEqual(describe((await spaceEvents(store)).slice(5)), ["space-normal c"]);
  } finally {
    await store.close();
  }
});
