/**
 * Goal: issue 9 item 8 for the space and history policies: a SIGKILL at any moment of a space
 * action (delete-oldest: the oldest snapshot deleted — merged into the baseline first with
 * --merge-oldest-into-baseline — then compaction; compact) or of a history cap leaves every kept
 * volume exactly as it was, and each step has happened or not, never half.
 *
 * Method: one store with two 8 MiB disks: `del` (window 0, --space-action delete-oldest,
 * --merge-oldest-into-baseline on) and `cap` (1 h window, --space-action compact, --history-max
 * 256K). Each round writes random data and cuts snapshots on both (directly, in this process),
 * hashes every volume, closes the store, and starts a child (support/space-action-child.ts) that
 * opens it as the server does and runs one space check with the file system measured 99 % used
 * (so `del` loses its snapshots oldest first) while the history cap runs; the child is SIGKILLed
 * 0–300 ms after it opened the store (half of the time within 60 ms). Then the store is opened again and:
 *   - the snapshots of `del` that are left are its newest ones (delete-oldest goes in order), and
 *     each reads as before; the baseline reads as before or as a snapshot deleted (merged) in
 *     this round; the current volume reads as before;
 *   - every snapshot of `cap`, its current volume and its baseline read as before;
 *   - the whole-disk check passes.
 * Deterministic choices from a seed (SNAPLOG_CRASH_SEED replays; the kill moment depends on
 * timing, so how far each child got is reported, not asserted); SNAPLOG_CRASH_SPACE_ROUNDS sets
 * the rounds (default 12).
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomBytes, randomInt } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Store } from "../src/store/store.js";
import type { Volume } from "../src/store/volume.js";
import { Prng } from "./support/crash-model.js";
import { tempDir } from "./support/temp-dir.js";

const roundCount = Number(process.env.SNAPLOG_CRASH_SPACE_ROUNDS ?? 12);
const seed = process.env.SNAPLOG_CRASH_SEED !== undefined ? Number(process.env.SNAPLOG_CRASH_SEED) >>> 0 : randomInt(2 ** 32);
const SIZE = 8 * 1024 * 1024;
const BLOCK = 4096;
/** Half the kills within the first steps, the rest anywhere up to about a whole run. */
const KILL_DELAY_MS_EARLY = 60;
const KILL_DELAY_MS_MAX = 300;
const childPath = fileURLToPath(new URL("./support/space-action-child.js", import.meta.url));

const children = new Set<ReturnType<typeof spawn>>();
after(() => {
  for (const child of children) child.kill("SIGKILL");
});

async function hashVolume(volume: Volume): Promise<string> {
  const hash = createHash("sha256");
  for (let offset = 0; offset < volume.sizeBytes; offset += 1024 * 1024) hash.update(await volume.read(offset, 1024 * 1024));
  volume.release();
  return hash.digest("hex");
}

async function writeRandom(store: Store, disk: string, prng: Prng): Promise<void> {
  const volume = store.resolve(disk);
  const count = 4 + prng.below(12);
  for (let index = 0; index < count; index++) {
    const length = (1 + prng.below(128)) * BLOCK;
    const offset = prng.below((SIZE - length) / BLOCK) * BLOCK;
    if (prng.chance(0.9)) await volume.write(offset, randomBytes(length), { fua: false });
    else await volume.writeZeroes(offset, length, { fua: false, noHole: false });
  }
  await volume.flush();
  volume.release();
}

/** Runs the child until it opened the store, then SIGKILLs it after `delayMs`; says how far it got. */
function runAndKill(storePath: string, delayMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [childPath, storePath], { stdio: ["ignore", "pipe", "pipe"] });
    children.add(child);
    let stdout = "";
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on("data", (chunk: Buffer) => {
      const ready = !stdout.includes("ready");
      stdout += chunk.toString();
      if (ready && stdout.includes("ready")) setTimeout(() => child.kill("SIGKILL"), delayMs);
    });
    child.once("exit", (code, signal) => {
      children.delete(child);
      if (signal !== "SIGKILL" && code !== 0) reject(new Error(`the child failed (${code ?? signal}): ${stderr}`));
      else resolve(stdout.includes("done") ? "done" : stdout.includes("ready") ? "killed" : "killed before ready");
    });
  });
}

interface Known {
  current: string;
  baseline: string;
  /** Oldest first. */
  snapshots: { name: string; hash: string }[];
}

async function known(store: Store, disk: string): Promise<Known> {
  const snapshots = [];
  for (const info of await store.listSnapshots(disk))
    snapshots.push({ name: info.name, hash: await hashVolume(store.resolve(`${disk}@${info.name}`)) });
  return { current: await hashVolume(store.resolve(disk)), baseline: await hashVolume(store.resolve(`${disk}@baseline`)), snapshots };
}

test(
  `SIGKILL during space actions and history caps: every kept volume survives, each step all or nothing (seed ${seed})`,
  { timeout: 600_000 },
  async (t) => {
    const storePath = join(tempDir("crash-space"), "store");
    await Store.init(storePath);
    let store = await Store.open(storePath, { mode: "direct" });
    await store.createDisk({ name: "del", sizeBytes: SIZE, historySeconds: 0 });
    await store.createDisk({ name: "cap", sizeBytes: SIZE, historySeconds: 3600 });
    await store.setPolicy({
      disk: "del",
      autoCompact: false,
      spaceHighPercent: 50,
      spaceAction: "delete-oldest",
      mergeOldestIntoBaseline: true,
    });
    await store.setPolicy({ disk: "cap", spaceHighPercent: 50, spaceAction: "compact", historyMaxBytes: 256 * 1024 });
    const prng = new Prng(seed);
    const outcomes: string[] = [];
    try {
      for (let round = 0; round < roundCount; round++) {
        const label = `seed ${seed}, round ${round}`;
        for (const disk of ["del", "cap"]) {
          for (let cut = 0; cut < 1 + prng.below(3); cut++) {
            await writeRandom(store, disk, prng);
            await store.createSnapshot({ disk, name: `r${round}-${cut}` });
          }
          await writeRandom(store, disk, prng);
        }
        const before = { del: await known(store, "del"), cap: await known(store, "cap") };
        await store.close();
        const outcome = await runAndKill(storePath, prng.below(prng.chance(0.5) ? KILL_DELAY_MS_EARLY : KILL_DELAY_MS_MAX));
        store = await Store.open(storePath, { mode: "direct" });
        const afterwards = { del: await known(store, "del"), cap: await known(store, "cap") };

        // del: its newest snapshots are left, as they were; the baseline is as before or a deleted one's.
        const left = afterwards.del.snapshots;
        const gone = before.del.snapshots.slice(0, before.del.snapshots.length - left.length);
        assert.deepEqual(left, before.del.snapshots.slice(gone.length), `${label}: del keeps its newest snapshots, unchanged`);
        assert.equal(afterwards.del.current, before.del.current, `${label}: del's current volume`);
        const baselines = [before.del.baseline, ...gone.map((snapshot) => snapshot.hash)];
        // The fold of the next one may be done while its delete is not.
        if (left.length > 0) baselines.push(left[0].hash);
        assert.ok(baselines.includes(afterwards.del.baseline), `${label}: del's baseline is as before or a merged snapshot's`);
        if (outcome === "done") assert.equal(left.length, 0, `${label}: a finished space action leaves nothing to delete`);
        if (gone.length > 0 && left.length === 0)
          assert.equal(afterwards.del.baseline, gone[gone.length - 1].hash, `${label}: the last merge`);
        // cap: nothing of it is deleted; the compaction and the cap free only what no kept view needs.
        assert.deepEqual(afterwards.cap, before.cap, `${label}: every volume of cap`);
        assert.deepEqual(store.checkIntegrity(), { del: [], cap: [] }, `${label}: whole-disk check`);
        outcomes.push(`${outcome}:${gone.length}/${before.del.snapshots.length}`);
      }
    } finally {
      await store.close();
    }
    t.diagnostic(`seed ${seed}: how far each child got (deleted/snapshots of del): ${outcomes.join(" ")}`);
  },
);
