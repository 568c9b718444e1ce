/**
 * Goal: SPEC §2 "Snapshots never change" and issue 3's crash safety: a SIGKILL at any moment
 * of a snapshot delete (merge), an in-place compaction, a fold into the baseline or a
 * rollback leaves every kept view exactly as it was, and the interrupted operation has either
 * happened or not (a fold is finished at the next open) — never half.
 *
 * Method: one store, two 32 MiB disks of 4 KiB blocks served by a real `snaplog serve` child:
 * `h0` (history window 0: overwritten versions are reclaimed, slots reused) and `hw` (1 h window,
 * created --from a random image so the baseline path runs). Each round writes random data over
 * NBD (aligned and not, zeroes, trims, then FLUSH), sometimes cuts a snapshot, on `hw` records a
 * point in time (its LSN), and hashes every kept view: current, baseline, each snapshot, each
 * recorded point. Then it starts one history operation through the API socket and SIGKILLs the
 * server 0-60 ms later (half of the time within 8 ms: before, during or after it), restarts
 * it, and checks:
 *   - every snapshot and point in time hashes as before (a deleted snapshot may be gone);
 *   - the current volume is as before, or — after a rollback — the target's content, and then
 *     the snapshot keeping the state before exists with the old content;
 *   - the baseline is as before, or — after a fold — the oldest kept view's content;
 *   - an operation whose answer arrived before the kill has its effect.
 * At the end the whole-disk check (each slot held by one live entry, retiring, or free) passes.
 * Deterministic choices from a seed (SNAPLOG_CRASH_SEED replays; the kill moment depends on
 * timing, so how many operations it met before their answer is reported, not asserted);
 * SNAPLOG_CRASH_HISTORY_ROUNDS sets the rounds (default 24).
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes, randomInt } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { hashExport, NbdClient } from "./support/nbd-client.js";
import { Prng } from "./support/crash-model.js";
import { killServeChildren, snaplogCli, startServeChild, type ServeChild } from "./support/serve-child.js";
import { tempDir } from "./support/temp-dir.js";
import { Store } from "../src/store/store.js";

const roundCount = Number(process.env.SNAPLOG_CRASH_HISTORY_ROUNDS ?? 24);
const seed = process.env.SNAPLOG_CRASH_SEED !== undefined ? Number(process.env.SNAPLOG_CRASH_SEED) >>> 0 : randomInt(2 ** 32);
const SIZE = 32 * 1024 * 1024;
const BLOCK = 4096;
const KILL_DELAY_MS_MAX = 60;
const KILL_DELAY_MS_EARLY = 8;

after(() => killServeChildren());

interface DiskKnown {
  name: string;
  current: string;
  baseline: string;
  snapshots: Map<string, { lsn: number; hash: string }>;
  points: { lsn: number; hash: string }[];
}

type Operation =
  | { kind: "delete"; snapshot: string }
  | { kind: "compact" }
  | { kind: "fold"; expectedBaseline: string }
  | { kind: "rollback"; at: string; targetHash: string; before: string };

/** The SHA-256 of an export of the running server. */
function hashView(server: ServeChild, exportName: string): Promise<string> {
  return hashExport({ path: server.socketPath }, exportName);
}

/** Random writes, zeroes and trims, aligned and not, then a FLUSH: all of it durable. */
async function writeRandom(server: ServeChild, disk: string, prng: Prng): Promise<void> {
  const client = await NbdClient.connect({ path: server.socketPath }, disk);
  try {
    const work: Promise<void>[] = [];
    const count = 8 + prng.below(24);
    for (let index = 0; index < count; index++) {
      const aligned = prng.chance(0.6);
      const length = aligned ? (1 + prng.below(64)) * BLOCK : 1 + prng.below(200_000);
      const offset = aligned ? prng.below((SIZE - length) / BLOCK) * BLOCK : prng.below(SIZE - length);
      const roll = prng.float();
      if (roll < 0.8) work.push(client.write(offset, randomBytes(length)));
      else if (roll < 0.9) work.push(client.writeZeroes(offset, length));
      else work.push(client.trim(offset, length));
    }
    await Promise.all(work);
    await client.flush();
  } finally {
    await client.disconnect();
  }
}

function pickOperation(disk: DiskKnown, prng: Prng, round: number): Operation {
  const snapshots = [...disk.snapshots.entries()];
  const roll = prng.float();
  if (roll < 0.25 && snapshots.length > 0) return { kind: "delete", snapshot: snapshots[prng.below(snapshots.length)][0] };
  if (roll < 0.5) return { kind: "compact" };
  if (roll < 0.7 && disk.name === "h0") {
    // Window 0: the oldest kept view is the oldest snapshot, else the current volume.
    const oldest = snapshots.sort((a, b) => a[1].lsn - b[1].lsn)[0];
    return { kind: "fold", expectedBaseline: oldest === undefined ? disk.current : oldest[1].hash };
  }
  const targets = [
    ...snapshots.map(([name, info]) => ({ at: name, hash: info.hash })),
    ...disk.points.map((point) => ({ at: `lsn:${point.lsn}`, hash: point.hash })),
  ];
  if (targets.length === 0) return { kind: "compact" };
  const target = targets[prng.below(targets.length)];
  return { kind: "rollback", at: target.at, targetHash: target.hash, before: `before-${round}` };
}

function startOperation(server: ServeChild, disk: string, operation: Operation): Promise<unknown> {
  switch (operation.kind) {
    case "delete":
      return server.api.deleteSnapshot(disk, operation.snapshot);
    case "compact":
      return server.api.compact({ disk });
    case "fold":
      return server.api.compact({ disk, intoBaseline: true });
    case "rollback":
      return server.api.restore({ disk, at: operation.at, rollback: true, name: operation.before });
  }
}

/** Checks every kept view of `disk` after the restart, and updates what is known to the outcome. */
async function checkDisk(
  server: ServeChild,
  disk: DiskKnown,
  operation: Operation | undefined,
  answered: boolean,
  label: string,
): Promise<void> {
  const listed = new Map((await server.api.listSnapshots(disk.name)).map((info) => [info.name, info.lsn]));
  for (const [name, info] of [...disk.snapshots]) {
    if (!listed.has(name)) {
      assert.ok(operation?.kind === "delete" && operation.snapshot === name, `${label}: snapshot ${name} vanished`);
      disk.snapshots.delete(name);
      continue;
    }
    assert.equal(listed.get(name), info.lsn, `${label}: snapshot ${name} keeps its LSN`);
    assert.equal(await hashView(server, `${disk.name}@${name}`), info.hash, `${label}: snapshot ${name} changed`);
  }
  if (operation?.kind === "delete" && answered)
    assert.ok(!listed.has(operation.snapshot), `${label}: an answered delete of ${operation.snapshot} took effect`);
  for (const point of disk.points) {
    assert.equal(await hashView(server, `${disk.name}@lsn:${point.lsn}`), point.hash, `${label}: point in time LSN ${point.lsn} changed`);
  }

  const current = await hashView(server, disk.name);
  if (operation?.kind === "rollback") {
    const rolledBack = current === operation.targetHash && current !== disk.current;
    const kept = listed.has(operation.before);
    if (answered) assert.ok(current === operation.targetHash && kept, `${label}: an answered rollback to ${operation.at} took effect`);
    assert.ok(
      current === disk.current || current === operation.targetHash,
      `${label}: the current volume is neither as before nor the rollback target`,
    );
    if (rolledBack) assert.ok(kept, `${label}: a rollback happened without keeping the state before`);
    if (kept) {
      assert.equal(
        await hashView(server, `${disk.name}@${operation.before}`),
        disk.current,
        `${label}: ${operation.before} holds the state before the rollback`,
      );
      disk.snapshots.set(operation.before, { lsn: listed.get(operation.before)!, hash: disk.current });
    }
  } else {
    assert.equal(current, disk.current, `${label}: the current volume changed`);
  }
  disk.current = current;

  const baseline = await hashView(server, `${disk.name}@baseline`);
  if (operation?.kind === "fold") {
    if (answered) assert.equal(baseline, operation.expectedBaseline, `${label}: an answered fold took effect`);
    assert.ok(
      baseline === disk.baseline || baseline === operation.expectedBaseline,
      `${label}: the baseline is neither as before nor the folded view`,
    );
  } else {
    assert.equal(baseline, disk.baseline, `${label}: the baseline changed`);
  }
  disk.baseline = baseline;
}

test(
  `SIGKILL during snapshot delete, compaction, fold and rollback: every kept view survives, the operation is all or nothing (seed ${seed})`,
  { timeout: 600_000 },
  async (t) => {
    const directory = tempDir("crash-history");
    const storePath = join(directory, "store");
    const socketPath = join(directory, "nbd.sock");
    const imagePath = join(directory, "image.raw");
    writeFileSync(imagePath, randomBytes(20 * 1024 * 1024 + 1234));
    assert.equal((await snaplogCli(storePath, ["init"])).code, 0);
    let server = await startServeChild(storePath, socketPath);
    await server.api.createDisk({ name: "h0", sizeBytes: SIZE, historySeconds: 0 });
    await server.api.createDisk({ name: "hw", sizeBytes: SIZE, fromImage: imagePath });
    const disks: DiskKnown[] = [];
    for (const name of ["h0", "hw"]) {
      const baseline = await hashView(server, `${name}@baseline`);
      disks.push({ name, current: baseline, baseline, snapshots: new Map(), points: [] });
    }
    const prng = new Prng(seed);
    const outcomes: string[] = [];
    for (let round = 0; round < roundCount; round++) {
      const disk = disks[prng.below(disks.length)];
      const label = `seed ${seed}, round ${round}, disk ${disk.name}`;
      await writeRandom(server, disk.name, prng);
      disk.current = await hashView(server, disk.name);
      if (prng.chance(0.5)) {
        const created = await server.api.createSnapshot({ disk: disk.name, name: `r${round}` });
        disk.snapshots.set(created.name, { lsn: created.lsn, hash: disk.current });
      }
      if (disk.name === "hw" && prng.chance(0.5)) disk.points.push({ lsn: (await server.api.showDisk("hw")).lsnLast, hash: disk.current });

      const operation = pickOperation(disk, prng, round);
      let answered = false;
      const running = startOperation(server, disk.name, operation).then(
        () => (answered = true),
        () => undefined,
      );
      // Half the kills come early, while the operation most likely runs; the rest anywhere up to the max.
      await new Promise((resolve) => setTimeout(resolve, prng.below(prng.chance(0.5) ? KILL_DELAY_MS_EARLY : KILL_DELAY_MS_MAX)));
      await server.kill();
      await running;
      server = await startServeChild(storePath, socketPath);
      for (const each of disks)
        await checkDisk(server, each, each === disk ? operation : undefined, each === disk && answered, `${label}, ${operation.kind}`);
      outcomes.push(`${operation.kind}${answered ? "" : "*"}`);
    }
    await server.stop();
    const store = await Store.open(storePath, { mode: "direct" });
    try {
      assert.deepEqual(store.checkIntegrity(), { h0: [], hw: [] }, "whole-disk check after every round");
    } finally {
      await store.close();
    }
    // Which operations the kill met before their answer (*) depends on timing, so it is reported, not asserted.
    const unanswered = outcomes.filter((outcome) => outcome.endsWith("*")).length;
    t.diagnostic(`seed ${seed}: ${unanswered} of ${outcomes.length} operations killed before their answer: ${outcomes.join(" ")}`);
  },
);
