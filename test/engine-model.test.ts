/**
 * Goal: the engine is exactly the model. Method: fast-check generates sequences of writes
 * (aligned and not), zeroes, trims, snapshots, flushes, bursts of concurrent writes (aligned
 * and not, overlapping inside blocks: partial-block merges must follow queue order), reads of
 * random volumes, clean closes and crash-like reopens (no final checkpoint), on a small disk
 * with a tiny checkpoint threshold so journal rotation happens often. The model keeps a full
 * copy of the current volume, of every snapshot and of the baseline; after every step that
 * reads, and at the end, each volume must equal its copy byte for byte. With a zero history
 * window, dead versions are reclaimed and their slots reused: a slot reused too early
 * corrupts a snapshot or fails a checksum, and a reopen checks no slot has two owners.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import * as path from "node:path";
import fc from "fast-check";
import { DiskEngine, BASELINE_FILE } from "../src/engine/disk-engine.js";
import { DirectoryMedium } from "../src/engine/medium.js";
import { DiskVolume } from "../src/store/disk-volume.js";
import { tempDir } from "./support/temp-dir.js";

const BLOCK_BYTES = 512;
const BLOCK_COUNT = 40;
const SIZE_BYTES = BLOCK_BYTES * BLOCK_COUNT;

type Op =
  | { t: "write"; offset: number; length: number; seed: number; fua: boolean }
  | { t: "zero" | "trim"; offset: number; length: number }
  | { t: "burst"; writes: { offset: number; length: number; seed: number }[] }
  | { t: "snapshot" }
  | { t: "flush" }
  | { t: "read"; volume: number; offset: number; length: number }
  | { t: "reopen"; clean: boolean };

const range = fc
  .tuple(fc.integer({ min: 0, max: SIZE_BYTES - 1 }), fc.integer({ min: 1, max: 5 * BLOCK_BYTES }))
  .map(([offset, length]) => ({ offset, length: Math.min(length, SIZE_BYTES - offset) }));
const alignedRange = fc
  .tuple(fc.integer({ min: 0, max: BLOCK_COUNT - 1 }), fc.integer({ min: 1, max: 6 }))
  .map(([lba, blocks]) => ({ offset: lba * BLOCK_BYTES, length: Math.min(blocks, BLOCK_COUNT - lba) * BLOCK_BYTES }));

const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(fc.oneof(range, alignedRange), fc.integer(), fc.boolean()).map(([r, seed, fua]) => ({ t: "write" as const, ...r, seed, fua })) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom("zero" as const, "trim" as const), fc.oneof(range, alignedRange)).map(([t, r]) => ({ t, ...r })) },
  {
    weight: 2,
    // Concurrent writes, aligned or not, often to the same blocks: queue order must win.
    arbitrary: fc
      .array(fc.tuple(fc.oneof(range, alignedRange, range.map((r) => ({ offset: r.offset % (4 * BLOCK_BYTES), length: Math.min(r.length, 300) }))), fc.integer()), { minLength: 2, maxLength: 8 })
      .map((writes) => ({ t: "burst" as const, writes: writes.map(([r, seed]) => ({ ...r, seed })) })),
  },
  { weight: 2, arbitrary: fc.constant({ t: "snapshot" as const }) },
  { weight: 1, arbitrary: fc.constant({ t: "flush" as const }) },
  { weight: 3, arbitrary: fc.tuple(fc.nat(), range).map(([volume, r]) => ({ t: "read" as const, volume, ...r })) },
  { weight: 1, arbitrary: fc.boolean().map((clean) => ({ t: "reopen" as const, clean })) },
);

function pattern(seed: number, lengthBytes: number): Buffer {
  const data = Buffer.alloc(lengthBytes);
  let x = seed | 1;
  for (let index = 0; index < lengthBytes; index++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    data[index] = x & 0xff;
  }
  return data;
}

interface Harness {
  directory: string;
  engine: DiskEngine;
  hasBaseline: boolean;
}

async function openEngine(directory: string, hasBaseline: boolean, historySeconds: number): Promise<DiskEngine> {
  return DiskEngine.open(
    new DirectoryMedium(directory),
    { name: "model", sizeBytes: SIZE_BYTES, blockSizeBytes: BLOCK_BYTES, hasBaseline, historySeconds },
    {},
    // Tiny journal and segments (8 slots): rotation, segment boundaries and segment reuse happen often.
    { journalCheckpointBytes: 2048, segmentSizeBytes: 8 * BLOCK_BYTES },
  );
}

function volumeOf(harness: Harness, lsn: number, readOnly: boolean): DiskVolume {
  return new DiskVolume(harness.engine, "model", "model", lsn, readOnly, () => undefined);
}

async function runCase(ops: Op[], withBaseline: boolean, historySeconds: number, caseIndex: number, root: string): Promise<void> {
  const directory = path.join(root, `case-${caseIndex}`);
  const medium = new DirectoryMedium(directory);
  const { mkdirSync } = await import("node:fs");
  mkdirSync(directory, { recursive: true });
  const baseline = withBaseline ? pattern(caseIndex + 7, SIZE_BYTES) : Buffer.alloc(SIZE_BYTES);
  if (withBaseline) writeFileSync(path.join(directory, BASELINE_FILE), baseline);
  await DiskEngine.create(medium);
  const harness: Harness = { directory, engine: await openEngine(directory, withBaseline, historySeconds), hasBaseline: withBaseline };
  const current = Buffer.from(baseline);
  const snapshots: { lsn: number; image: Buffer }[] = [];

  const expectVolume = async (volumeIndex: number, offset: number, length: number) => {
    const choice = volumeIndex % (snapshots.length + 2);
    const [lsn, image, label] =
      choice === 0 ? [Infinity, current, "current"] : choice === 1 ? [0, baseline, "baseline"] : [snapshots[choice - 2].lsn, snapshots[choice - 2].image, `snapshot ${choice - 2}`];
    const actual = await volumeOf(harness, lsn, choice !== 0).read(offset, length);
    assert.ok(actual.equals(image.subarray(offset, offset + length)), `${label} differs at [${offset}, +${length})`);
  };

  try {
    for (const op of ops) {
      const writable = volumeOf(harness, Infinity, false);
      switch (op.t) {
        case "write": {
          const data = pattern(op.seed, op.length);
          await writable.write(op.offset, data, { fua: op.fua });
          data.copy(current, op.offset);
          break;
        }
        case "zero":
          await writable.writeZeroes(op.offset, op.length, { fua: false, noHole: false });
          current.fill(0, op.offset, op.offset + op.length);
          break;
        case "trim":
          await writable.trim(op.offset, op.length, { fua: false });
          current.fill(0, op.offset, op.offset + op.length);
          break;
        case "burst": {
          // Issued in one turn of the event loop: one batch, applied in call order.
          const work = op.writes.map((w) => {
            const data = pattern(w.seed, w.length);
            const promise = writable.write(w.offset, data, { fua: false });
            data.copy(current, w.offset);
            return promise;
          });
          await Promise.all(work);
          break;
        }
        case "snapshot": {
          const cut = await harness.engine.cutSnapshot(`s${snapshots.length}`, snapshots.length + 10);
          snapshots.push({ lsn: cut.lsn, image: Buffer.from(current) });
          break;
        }
        case "flush":
          await writable.flush();
          break;
        case "read":
          await expectVolume(op.volume, op.offset, op.length);
          break;
        case "reopen":
          if (op.clean) await harness.engine.close();
          else await harness.engine.abandon();
          harness.engine = await openEngine(directory, withBaseline, historySeconds);
          assert.equal(harness.engine.snapshots.length, snapshots.length, "snapshots survive a reopen");
          break;
      }
    }
    for (let volume = 0; volume < snapshots.length + 2; volume++) await expectVolume(volume, 0, SIZE_BYTES);
  } finally {
    await harness.engine.close();
  }
}

test("engine matches the in-memory model (fast-check)", async () => {
  const root = tempDir("model");
  let caseIndex = 0;
  await fc.assert(
    // History 0 reclaims overwritten versions at once and reuses their slots; 3600 keeps all.
    fc.asyncProperty(fc.array(opArbitrary, { minLength: 1, maxLength: 80 }), fc.boolean(), fc.constantFrom(0, 3600), async (ops, withBaseline, historySeconds) => {
      await runCase(ops, withBaseline, historySeconds, caseIndex++, root);
    }),
    { numRuns: Number(process.env.SNAPLOG_MODEL_RUNS ?? 150) },
  );
});
