/**
 * Goal: the history policies through the running server (issue 9, SPEC §4.1 and §4.6):
 *   --merge-oldest-into-baseline on: deleting the oldest snapshot folds it into the baseline
 *     first, so DISK@baseline then reads exactly what the snapshot read, and every other view is
 *     unchanged; deleting a snapshot that is not the oldest folds nothing; while the window still
 *     keeps older views the fold stops at them (no kept view changes) and the event says so;
 *   --history-max SIZE: the bytes held only for the window are capped — at once when the policy
 *     is set, and after writes that pass it — the window's oldest part going first, with an
 *     event saying from which LSN and time to which; snapshots and the current volume are
 *     untouched, views from the new horizon on read as before, older ones are refused.
 * Method: a real `snaplog serve` child, data written over NBD by the test's own client in known
 * patterns (awaited 1 MiB writes, so each block's LSN is known), the CLI against the same store,
 * every volume hashed over NBD and compared with the hash of what was written into it.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import type { StoreEvent } from "../src/store/operations/index.js";
import { hashExport, NbdClient } from "./support/nbd-client.js";
import { parseNdjson } from "./support/ndjson.js";
import { killServeChildren, snaplogCli, startServeChild, type ServeChild } from "./support/serve-child.js";
import { pattern } from "./support/data-pattern.js";
import { tempDir } from "./support/temp-dir.js";
import { waitFor } from "./support/wait-for.js";

after(killServeChildren);

const MiB = 1024 * 1024;
const BLOCK_BYTES = 4096;
const directory = tempDir("cli-history-policies");
const storePath = join(directory, "store");
let server: ServeChild;

async function cli(...args: string[]): Promise<string> {
  const result = await snaplogCli(storePath, args);
  assert.equal(result.code, 0, `snaplog ${args.join(" ")}: ${result.stderr}`);
  return result.stdout;
}

async function events(disk: string, type: string): Promise<StoreEvent[]> {
  return (parseNdjson(await cli("--json", "events", disk)) as StoreEvent[]).filter((event) => event.type === type);
}

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

async function hashOf(exportName: string): Promise<string> {
  return hashExport({ path: server.socketPath }, exportName);
}

/** What the test wrote, kept as images, so every volume's expected bytes are known. */
class Disk {
  image: Buffer;

  constructor(
    readonly name: string,
    sizeBytes: number,
  ) {
    this.image = Buffer.alloc(sizeBytes);
  }

  /** Writes `data` at `offset` in awaited 1 MiB requests (blocks take LSNs in order), then a FLUSH. */
  async write(offset: number, data: Buffer): Promise<void> {
    const client = await NbdClient.connect({ path: server.socketPath }, this.name);
    try {
      for (let done = 0; done < data.length; done += MiB) await client.write(offset + done, data.subarray(done, done + MiB));
      await client.flush();
    } finally {
      await client.disconnect();
    }
    data.copy(this.image, offset);
  }

  async zero(offset: number, length: number): Promise<void> {
    const client = await NbdClient.connect({ path: server.socketPath }, this.name);
    try {
      await client.writeZeroes(offset, length);
      await client.flush();
    } finally {
      await client.disconnect();
    }
    this.image.fill(0, offset, offset + length);
  }

  /** Cuts a snapshot; returns the hash of what it holds. */
  async snapshot(name: string): Promise<string> {
    await cli("snapshot", "create", this.name, "--name", name);
    return sha256(this.image);
  }
}

test("start the server", async () => {
  await cli("init");
  await cli("disk", "create", "merge", "--size", "4M", "--history", "0");
  await cli("disk", "create", "window", "--size", "4M", "--history", "1h");
  await cli("disk", "create", "capped", "--size", "8M", "--history", "1h");
  server = await startServeChild(storePath, join(directory, "nbd.sock"));
});

test("merge-oldest-into-baseline: the oldest snapshot's delete makes the baseline its content; every other view unchanged", async () => {
  const disk = new Disk("merge", 4 * MiB);
  await cli("policy", "set", "merge", "--merge-oldest-into-baseline", "on");
  await disk.write(0, pattern(1, 4 * MiB));
  const s1 = await disk.snapshot("s1");
  await disk.write(MiB, pattern(2, 2 * MiB));
  await disk.zero(3 * MiB, MiB / 2);
  const s2 = await disk.snapshot("s2");
  await disk.write(0, pattern(3, MiB));
  const s3 = await disk.snapshot("s3");
  await disk.write(2 * MiB, pattern(4, MiB));
  const current = sha256(disk.image);
  const zeros = sha256(Buffer.alloc(4 * MiB));
  assert.equal(await hashOf("merge@baseline"), zeros);
  assert.equal(await hashOf("merge@s1"), s1);

  await cli("snapshot", "delete", "merge", "s1");
  assert.equal(await hashOf("merge@baseline"), s1, "the baseline reads what s1 read");
  for (const [exportName, expected] of [
    ["merge@s2", s2],
    ["merge@s3", s3],
    ["merge", current],
  ])
    assert.equal(await hashOf(exportName), expected, `${exportName} unchanged`);
  const [merged] = await events("merge", "baseline-merged");
  assert.equal(merged.snapshot, "s1");
  assert.equal(merged.details?.lsnFold, merged.details?.lsnSnapshot, "folded at the snapshot itself");
  assert.match(merged.message, /snapshot s1 of disk merge folded into the baseline before its delete/);

  // s3 is not the oldest: an ordinary delete, the baseline stays.
  await cli("snapshot", "delete", "merge", "s3");
  assert.equal(await hashOf("merge@baseline"), s1);
  assert.equal((await events("merge", "baseline-merged")).length, 1);
  // s2 is the oldest now.
  await cli("snapshot", "delete", "merge", "s2");
  assert.equal(await hashOf("merge@baseline"), s2, "the baseline reads what s2 read, zeroed range included");
  assert.equal(await hashOf("merge"), current);
  assert.deepEqual(
    (await events("merge", "snapshot-deleted")).map((event) => event.snapshot),
    ["s1", "s3", "s2"],
  );
  assert.equal((await events("merge", "baseline-merged")).length, 2);
});

test("merge-oldest-into-baseline while the window keeps older views: the fold stops there, no kept view changes", async () => {
  const disk = new Disk("window", 4 * MiB);
  await cli("policy", "set", "window", "--merge-oldest-into-baseline", "on");
  await disk.write(0, pattern(5, 4 * MiB));
  await disk.snapshot("w1");
  const lsnAfterFirst = (4 * MiB) / BLOCK_BYTES;
  const firstImage = sha256(disk.image);
  await disk.write(0, pattern(6, 2 * MiB));
  const w2 = await disk.snapshot("w2");
  await disk.write(MiB, pattern(7, MiB));
  const current = sha256(disk.image);

  await cli("snapshot", "delete", "window", "w1");
  const [merged] = await events("window", "baseline-merged");
  assert.equal(merged.details?.lsnFold, 0, "the window keeps every view since the disk was made: nothing older to fold");
  assert.match(merged.message, /folded up to LSN 0 only, an older view is still kept/);
  assert.equal(await hashOf("window@baseline"), sha256(Buffer.alloc(4 * MiB)));
  assert.equal(await hashOf(`window@lsn:${lsnAfterFirst}`), firstImage, "the view w1 had is still in the window");
  assert.equal(await hashOf("window@w2"), w2);
  assert.equal(await hashOf("window"), current);
});

test("--history-max: set, it caps the window at once; writes past it cap it again; snapshots stay", async () => {
  const size = 8 * MiB;
  const blocks = size / BLOCK_BYTES;
  const disk = new Disk("capped", size);
  await disk.write(0, pattern(10, size));
  const s1 = await disk.snapshot("s1");
  await disk.write(0, pattern(11, size));
  const secondPass = Buffer.from(disk.image);
  await disk.write(0, pattern(12, size));
  // Pass 1 is held by s1; pass 2's versions (LSNs blocks+1 … 2·blocks) only by the window: 8 MiB.

  await cli("policy", "set", "capped", "--history-max", "2M");
  await waitFor("the first cap", async () => (await events("capped", "history-capped")).length === 1, 30_000);
  const [first] = await events("capped", "history-capped");
  const keep = (2 * MiB) / BLOCK_BYTES;
  // The pass-2 version of block b ended at LSN 2·blocks+1+b; the oldest blocks − keep of them go.
  const lsnFirst = 2 * blocks + (blocks - keep);
  assert.deepEqual(
    [
      first.details?.windowOnlyBytesBefore,
      first.details?.windowOnlyBytesAfter,
      first.details?.lsnFirstBefore,
      first.details?.lsnFirstAfter,
    ],
    [size, 2 * MiB, 0, lsnFirst],
  );
  assert.equal(first.reason, "history-max");
  assert.match(first.message, new RegExp(`shrank from the disk's start \\(LSN 0\\) to \\S+ \\(LSN ${lsnFirst}\\)`));
  assert.equal(await hashOf("capped@s1"), s1, "snapshots are never released by the cap");
  assert.equal(await hashOf("capped"), sha256(disk.image));
  // The view at the new horizon: pass 3 up to its block lsnFirst − 2·blocks − 1, pass 2 after.
  const atHorizon = Buffer.from(secondPass);
  disk.image.copy(atHorizon, 0, 0, (lsnFirst - 2 * blocks) * BLOCK_BYTES);
  assert.equal(await hashOf(`capped@lsn:${lsnFirst}`), sha256(atHorizon), "views from the new horizon on read as before");
  await assert.rejects(hashOf(`capped@lsn:${2 * blocks}`), /outside the history window/, "older views are gone");
  const shown = JSON.parse(await cli("--json", "disk", "show", "capped")) as { space: { window: { lsnFirst: number } } };
  assert.equal(shown.space.window.lsnFirst, lsnFirst);

  // A new cap applies at once (the attaches above released pins: the count is walked again); nothing is past 3 MiB.
  await cli("policy", "set", "capped", "--history-max", "3M");
  // Three more passes: 24 MiB more window-only, past the cap plus half a segment: the write path tells, the cap runs.
  for (const seed of [13, 14, 15]) await disk.write(0, pattern(seed, size));
  const passedByWrites = async () =>
    (await events("capped", "history-capped")).find((event) => (event.details?.windowOnlyBytesBefore as number) > 3 * MiB + 16 * MiB);
  await waitFor("a cap the write path asked for", async () => (await passedByWrites()) !== undefined, 30_000);
  const caps = await events("capped", "history-capped");
  for (const [index, cap] of caps.entries()) {
    if (index > 0)
      assert.equal(cap.details?.lsnFirstBefore, caps[index - 1].details?.lsnFirstAfter, "each cap starts where the last left the window");
    assert.equal(cap.details?.windowOnlyBytesAfter, index === 0 ? 2 * MiB : 3 * MiB);
  }
  assert.equal(await hashOf("capped@s1"), s1);
  assert.equal(await hashOf("capped"), sha256(disk.image));
  const policy = JSON.parse(await cli("--json", "policy", "show", "capped")) as { historyMaxBytes: number };
  assert.equal(policy.historyMaxBytes, 3 * MiB);
});

test("stop the server", async () => {
  await server.stop();
});
