/**
 * Goal: the history a disk keeps is usable by real NBD clients on the real server (SPEC §1
 * history window, §3.1 `DISK@lsn:N` and `DISK@<ISO time>`, §3.2 restore, snapshot delete,
 * compact, log, diff): a point in time reads exactly as the disk was then, across restarts
 * and a SIGKILL; a point outside the window is refused with a message naming the window;
 * an attached point in time stays intact while compaction runs; a rollback fails the writers
 * connected before it; deleting, compacting and folding change no kept view.
 *
 * Method: `snaplog serve` as a child (test/support/serve-child.ts), control through its API
 * socket (ApiClient), data written with qemu-io into the disk and into reference raw images
 * at the same time; at each point of interest the reference is copied. Exports are compared
 * with references by `qemu-img compare` and by hashing every byte read with nbdcopy
 * (assertExportEquals). A missing tool skips loudly, or fails under CI.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { requireTool } from "./support/nbd-server.js";
import { NbdClient, NbdRequestError } from "./support/nbd-client.js";
import { collect } from "./support/ndjson.js";
import { tempDir } from "./support/temp-dir.js";
import { killServeChildren, snaplogCli, startServeChild, type ServeChild } from "./support/serve-child.js";
import { applyIo, assertExportEquals, filesEqual, KiB, MiB, qemuIo, RefImage, runTool } from "./support/interop-tools.js";
import type { LogEntry } from "../src/store/operations/index.js";

let server: ServeChild | undefined;
after(async () => {
  try {
    if (server !== undefined && server.child.exitCode === null) await server.stop();
  } finally {
    killServeChildren();
  }
});
const directory = tempDir("interop-history");
const storePath = join(directory, "store");
const nbdSocketPath = join(directory, "nbd.sock");
const scratch = join(directory, "scratch");
mkdirSync(scratch);

const tools = ["qemu-io", "qemu-img", "nbdinfo", "nbdcopy"] as const;
const missing = tools.filter((tool) => !requireTool(tool));
const skip = missing.length > 0 ? `missing ${missing.join(", ")}` : false;

const SIZE = 16 * MiB;
const NBD_EIO = 5;

function live(): ServeChild {
  assert.ok(server !== undefined, "the server is running");
  return server;
}

async function restart(how: "SIGTERM" | "SIGKILL"): Promise<void> {
  const old = live();
  if (how === "SIGTERM") await old.stop();
  else await old.kill();
  server = undefined;
  server = await startServeChild(storePath, nbdSocketPath);
}

async function lsnOf(disk: string): Promise<number> {
  return (await live().api.showDisk(disk)).lsnLast;
}

function ref(name: string): RefImage {
  return RefImage.zeros(join(scratch, `${name}.raw`), SIZE);
}

/** A generation of writes that overlaps earlier ones (so every point differs from the others). */
async function generation(disk: string, image: RefImage, seed: number): Promise<void> {
  await applyIo(live().uri(disk), image, [
    { op: "pattern", offset: (seed % 4) * MiB + 100, length: 2 * MiB, byte: 0x10 + seed },
    { op: "random", offset: 3 * MiB - 7, length: 700 * KiB },
    { op: "zero", offset: 8 * MiB + seed * 4 * KiB, length: 64 * KiB },
    { op: "discard", offset: 12 * MiB, length: 256 * KiB + seed },
  ]);
}

/** What the server said refusing an export, as qemu-img shows it ("server reported: ..."). */
async function refusal(uri: string): Promise<string> {
  const run = await runTool("qemu-img", ["info", "-f", "raw", uri]);
  assert.notEqual(run.code, 0, `qemu-img info ${uri} must fail: ${run.stdout}`);
  return run.stderr;
}

before(async () => {
  if (skip !== false) return;
  const init = await snaplogCli(storePath, ["init"]);
  assert.equal(init.code, 0, init.stderr);
  server = await startServeChild(storePath, nbdSocketPath);
});

test(
  "DISK@lsn:N and DISK@<time> read as the disk was at that point (qemu-img compare), across a clean restart and a SIGKILL",
  { skip },
  async () => {
    await live().api.createDisk({ name: "pit", sizeBytes: SIZE });
    const image = ref("pit");
    const points: { lsn: number; time: string; ref: RefImage }[] = [];
    for (let seed = 1; seed <= 3; seed++) {
      await generation("pit", image, seed);
      const lsn = await lsnOf("pit");
      // The time right after the generation: the disk's state at that time is this generation.
      const time = new Date().toISOString();
      await new Promise((resolve) => setTimeout(resolve, 5));
      points.push({ lsn, time, ref: image.copyTo(join(scratch, `pit-${seed}.raw`)) });
    }
    await generation("pit", image, 4);
    const check = async (label: string) => {
      for (const point of points) {
        await assertExportEquals(live().uri(`pit@lsn:${point.lsn}`), point.ref, `${label}: pit@lsn:${point.lsn}`);
        await assertExportEquals(live().unixUri(`pit@${point.time}`), point.ref, `${label}: pit@${point.time}`);
      }
      await assertExportEquals(live().uri("pit"), image, `${label}: pit`);
      // A point in time is read-only: qemu-io cannot open it for writing (EACCES; some versions say "read-only").
      const write = await runTool("qemu-io", ["-f", "raw", "-c", "write -P 1 0 4k", live().uri(`pit@lsn:${points[0].lsn}`)]);
      assert.notEqual(write.code, 0, "a write to a point in time is refused");
      assert.match(write.stderr, /Permission denied|read-only/i, "refused because the export is read-only");
    };
    // The wrong reference must not compare equal: the comparison discriminates.
    const wrong = await runTool("qemu-img", [
      "compare",
      "-f",
      "raw",
      "-F",
      "raw",
      points[0].ref.path,
      live().uri(`pit@lsn:${points[1].lsn}`),
    ]);
    assert.equal(wrong.code, 1, "two points in time differ");
    await check("running");
    await restart("SIGTERM");
    await check("after a clean restart");
    await restart("SIGKILL");
    await check("after SIGKILL");
  },
);

test("points outside the window are refused with an NBD error that names the window", { skip }, async () => {
  await live().api.createDisk({ name: "narrow", sizeBytes: SIZE, historySeconds: 0 });
  const image = ref("narrow");
  await generation("narrow", image, 1);
  const lsnOld = await lsnOf("narrow");
  await generation("narrow", image, 2);
  await assertExportEquals(live().uri("narrow"), image, "narrow after two generations");
  const message = await refusal(live().uri(`narrow@lsn:${lsnOld}`));
  assert.match(message, /outside the history window of disk narrow/);
  assert.match(message, /history window is 0/);
  const future = await refusal(live().uri(`narrow@lsn:${(await lsnOf("narrow")) + 1000}`));
  assert.match(future, /in the future/);
  const early = await refusal(live().uri("narrow@2001-01-01T00:00:00Z"));
  assert.match(early, /outside the history window/);
  // The current LSN is in the window even when it is 0 seconds wide.
  const info = await runTool("nbdinfo", [live().uri(`narrow@lsn:${await lsnOf("narrow")}`)]);
  assert.equal(info.code, 0, info.stderr);
});

test(
  "an attached point in time keeps reading right while the window shrinks to 0 and compaction frees history; after it detaches the point is gone",
  { skip },
  async () => {
    await live().api.createDisk({ name: "pinned", sizeBytes: SIZE });
    const image = ref("pinned");
    await generation("pinned", image, 1);
    const lsn = await lsnOf("pinned");
    const pointRef = image.copyTo(join(scratch, "pinned-point.raw"));
    await generation("pinned", image, 2);
    await generation("pinned", image, 3);
    const client = await NbdClient.connect({ host: "127.0.0.1", port: live().port }, `pinned@lsn:${lsn}`);
    try {
      await live().api.setPolicy({ disk: "pinned", historySeconds: 0 });
      const compacted = await live().api.compact({ disk: "pinned" });
      assert.equal(compacted.bytesMoved, 0, "in-place compaction copies nothing");
      const expected = readFileSync(pointRef.path);
      for (let offset = 0; offset < SIZE; offset += MiB) {
        assert.ok(
          (await client.read(offset, MiB)).equals(expected.subarray(offset, offset + MiB)),
          `the attached point reads right at ${offset}`,
        );
      }
    } finally {
      await client.disconnect();
    }
    // Detached: a compaction may now free what it saw, and attaching again is refused.
    await live().api.compact({ disk: "pinned" });
    assert.match(await refusal(live().uri(`pinned@lsn:${lsn}`)), /outside the history window/);
    await assertExportEquals(live().uri("pinned"), image, "the current volume after compaction");
    const space = (await live().api.showDisk("pinned")).space;
    assert.equal(space.logDeadBytes, 0, "nothing dead after compaction");
  },
);

test(
  "rollback: writers connected before it get EIO; the disk then reads as the target point and the state before is a snapshot",
  { skip },
  async () => {
    await live().api.createDisk({ name: "roll", sizeBytes: SIZE });
    const image = ref("roll");
    await generation("roll", image, 1);
    const target = await lsnOf("roll");
    const targetRef = image.copyTo(join(scratch, "roll-target.raw"));
    await generation("roll", image, 2);
    const beforeRef = image.copyTo(join(scratch, "roll-before.raw"));
    const writer = await NbdClient.connect({ host: "127.0.0.1", port: live().port }, "roll");
    try {
      await writer.write(0, Buffer.alloc(4096, 0xee));
      beforeRef.fill(0, 4096, 0xee);
      await writer.flush();
      const result = await live().api.restore({ disk: "roll", at: `lsn:${target}`, rollback: true, name: "before" });
      assert.equal(result.mode, "rollback");
      assert.ok((result.blocksRestored ?? 0) > 0, "blocks were rolled back");
      await assert.rejects(
        writer.write(0, Buffer.alloc(4096, 0xdd)),
        (error: unknown) => error instanceof NbdRequestError && error.errno === NBD_EIO,
      );
      await assert.rejects(writer.read(0, 4096), (error: unknown) => error instanceof NbdRequestError && error.errno === NBD_EIO);
    } finally {
      await writer.disconnect();
    }
    await assertExportEquals(live().uri("roll"), targetRef, "roll after the rollback");
    await assertExportEquals(live().uri("roll@before"), beforeRef, "roll@before keeps the state before");
    // The rolled-back disk takes writes again, and survives a SIGKILL.
    await applyIo(live().uri("roll"), targetRef, [{ op: "pattern", offset: 5 * MiB, length: MiB, byte: 0x3c }]);
    await restart("SIGKILL");
    await assertExportEquals(live().uri("roll"), targetRef, "roll after SIGKILL");
    await assertExportEquals(live().uri("roll@before"), beforeRef, "roll@before after SIGKILL");
  },
);

test(
  "snapshot delete merges its partition; in-place compaction and a fold into the baseline change no kept view; restore --to writes the point as a raw image",
  { skip },
  async () => {
    await live().api.createDisk({ name: "merge", sizeBytes: SIZE, historySeconds: 0 });
    const image = ref("merge");
    const snapshots: { name: string; ref: RefImage }[] = [];
    for (let seed = 1; seed <= 3; seed++) {
      await generation("merge", image, seed);
      await generation("merge", image, seed + 10);
      await live().api.createSnapshot({ disk: "merge", name: `m${seed}` });
      snapshots.push({ name: `m${seed}`, ref: image.copyTo(join(scratch, `merge-m${seed}.raw`)) });
    }
    await generation("merge", image, 20);
    const check = async (label: string) => {
      for (const snapshot of snapshots)
        await assertExportEquals(live().uri(`merge@${snapshot.name}`), snapshot.ref, `${label}: merge@${snapshot.name}`);
      await assertExportEquals(live().uri("merge"), image, `${label}: merge`);
    };
    const before = (await live().api.showDisk("merge")).space;
    const deleted = await live().api.deleteSnapshot("merge", "m2");
    assert.ok(deleted.bytesFreed > 0, "deleting m2 freed the versions only it kept");
    snapshots.splice(1, 1);
    assert.match(await refusal(live().uri("merge@m2")), /no snapshot named "m2"/);
    await check("after deleting m2");

    const compacted = await live().api.compact({ disk: "merge" });
    assert.equal(compacted.bytesMoved, 0);
    await check("after in-place compaction");
    const after = (await live().api.showDisk("merge")).space;
    assert.ok(after.logLiveBytes < before.logLiveBytes, `live log bytes went down (${before.logLiveBytes} → ${after.logLiveBytes})`);

    // The oldest kept view is m1: the baseline becomes the disk as it was at m1.
    const folded = await live().api.compact({ disk: "merge", intoBaseline: true });
    assert.equal(folded.lsnFold, (await live().api.listSnapshots("merge"))[0].lsn);
    await assertExportEquals(live().uri("merge@baseline"), snapshots[0].ref, "merge@baseline is the disk at m1");
    await check("after the fold");
    await restart("SIGKILL");
    await assertExportEquals(live().uri("merge@baseline"), snapshots[0].ref, "merge@baseline after SIGKILL");
    await check("after the fold and SIGKILL");

    const file = join(scratch, "merge-restored-m3.raw");
    const restored = await live().api.restore({ disk: "merge", at: "m3", to: file });
    assert.equal(restored.file?.sizeBytes, SIZE);
    assert.ok(filesEqual(file, snapshots[1].ref.path), "the restored image holds m3's bytes");
  },
);

test(
  "log lists entries in time order with snapshot cuts and their data; diff lists exactly the blocks written between two points",
  { skip },
  async () => {
    await live().api.createDisk({ name: "journal", sizeBytes: SIZE });
    const uri = live().uri("journal");
    await qemuIo(uri, ["write -P 0x61 0 8k", "write -P 0x63 6M 8k", "flush"]);
    const first = await live().api.createSnapshot({ disk: "journal", name: "one" });
    await qemuIo(uri, ["write -P 0x62 1M 12k", "write -z 4M 4k", "discard 6M 8k", "flush"]);
    const second = await live().api.createSnapshot({ disk: "journal", name: "two" });

    const rows: LogEntry[] = await collect(live().api.readLog({ disk: "journal", data: true }));
    const lsns = rows.map((row) => row.lsnFirst);
    assert.deepEqual(
      [...lsns].sort((a, b) => a - b),
      lsns,
      "time (LSN) order",
    );
    const cuts = rows.filter((row) => row.kind === "snapshot").map((row) => [row.snapshot?.name, row.lsnFirst]);
    assert.deepEqual(cuts, [
      ["one", first.lsn],
      ["two", second.lsn],
    ]);
    const writes = rows.filter((row) => row.kind === "write");
    assert.deepEqual(
      writes.map((row) => [row.offsetBytes, row.lengthBytes]),
      [
        [0, 8 * KiB],
        [6 * MiB, 8 * KiB],
        [MiB, 12 * KiB],
      ],
    );
    assert.ok(Buffer.from(writes[2].data ?? "", "base64").equals(Buffer.alloc(12 * KiB, 0x62)), "the data of the third write");
    // A discard of blocks that were never written changes no volume, so it is not logged.
    await qemuIo(uri, ["discard 9M 8k", "flush"]);
    assert.deepEqual((await collect(live().api.readLog({ disk: "journal", since: `lsn:${second.lsn + 1}` }))).length, 0);
    assert.deepEqual(
      rows.filter((row) => row.kind === "zero").map((row) => row.offsetBytes),
      [4 * MiB],
    );
    assert.deepEqual(
      rows.filter((row) => row.kind === "trim").map((row) => row.offsetBytes),
      [6 * MiB],
    );
    const partition = await collect(live().api.readLog({ disk: "journal", snapshot: "two" }));
    assert.ok(
      partition.every((row) => row.lsnFirst > first.lsn),
      "--snapshot two lists only two's partition",
    );

    const runs = await collect(live().api.diff({ disk: "journal", from: "one", to: "two" }));
    assert.deepEqual(
      runs.map((run) => [run.offsetBytes, run.lengthBytes]),
      [
        [MiB, 12 * KiB],
        [4 * MiB, 4 * KiB],
        [6 * MiB, 8 * KiB],
      ],
    );
    assert.deepEqual(await collect(live().api.diff({ disk: "journal", from: "two", to: "current" })), []);
  },
);
