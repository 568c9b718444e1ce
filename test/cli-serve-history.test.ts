/**
 * Goal: the history commands work through a running server, over the API socket, as they do
 * directly (SPEC §2 "One owner": while serve runs, the CLI goes through it): `log` streams
 * NDJSON, `compact` and `restore` answer through the progress stream, `policy` and errors
 * look the same. Method: a real `snaplog serve` child on a temp store (the store is locked by
 * it, so a command that tried to open the store directly would fail), data written over NBD
 * with the test's own client, and the CLI spawned against the same store.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { CompactResult, LogEntry, RestoreResult } from "../src/store/operations/index.js";
import { NbdClient } from "./support/nbd-client.js";
import { parseNdjson } from "./support/ndjson.js";
import { killServeChildren, snaplogCli, startServeChild } from "./support/serve-child.js";
import { tempDir } from "./support/temp-dir.js";

after(killServeChildren);

const directory = tempDir("cli-serve-history");
const storePath = join(directory, "store");
const blockSizeBytes = 4096;

test("log, compact, restore and policy go through the running server's API", async () => {
  // Background compaction off: the server's own (every 10 s, once a disk is idle 5 s) could free
  // the old version first on a loaded machine, and the compaction counted below is the CLI's.
  for (const args of [
    ["init"],
    ["disk", "create", "vm1", "--size", "1M", "--history", "1s"],
    ["policy", "set", "vm1", "--auto-compact", "off"],
  ]) {
    const result = await snaplogCli(storePath, args);
    assert.equal(result.code, 0, `snaplog ${args.join(" ")}: ${result.stderr}`);
  }
  const server = await startServeChild(storePath, join(directory, "nbd.sock"));
  const status = await snaplogCli(storePath, ["--json", "status"]);
  assert.equal(JSON.parse(status.stdout).mode, "server", status.stderr);

  const client = await NbdClient.connect({ host: "127.0.0.1", port: server.port }, "vm1");
  // One at a time and a few ms apart: entries of one batch and one millisecond would share a log row.
  for (const [offsetBytes, data] of [
    [0, Buffer.alloc(blockSizeBytes, "x")],
    [0, Buffer.alloc(blockSizeBytes, "y")],
    [blockSizeBytes, Buffer.alloc(2 * blockSizeBytes, "z")],
  ] as const) {
    await client.write(offsetBytes, data);
    await client.flush();
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await client.disconnect();

  const log = await snaplogCli(storePath, ["--json", "log", "vm1", "--data"]);
  assert.equal(log.code, 0, log.stderr);
  const entries = parseNdjson(log.stdout) as LogEntry[];
  assert.deepEqual(
    entries.map((entry) => [entry.kind, entry.lsnFirst, entry.lsnLast, entry.block, entry.blockCount]),
    [
      ["write", 1, 1, 0, 1],
      ["write", 2, 2, 0, 1],
      ["write", 3, 4, 1, 2],
    ],
  );
  assert.deepEqual(Buffer.from(entries[1].data!, "base64"), Buffer.alloc(blockSizeBytes, "y"));
  const text = await snaplogCli(storePath, ["log", "vm1", "--since", "lsn:3"]);
  assert.match(text.stdout, /^lsn 3-4 +\S+ {2}write +block 1 \+2 {2}offset 4096 length 8192\n$/);

  // Once the 1 s window has passed, "x" is a version no volume sees.
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const compact = await snaplogCli(storePath, ["--json", "compact", "vm1"]);
  assert.equal(compact.code, 0, compact.stderr);
  const compacted = JSON.parse(compact.stdout) as CompactResult;
  assert.deepEqual([compacted.mode, compacted.entriesFreed, compacted.bytesFreed], ["in-place", 1, blockSizeBytes]);
  const logAfter = await snaplogCli(storePath, ["--json", "log", "vm1"]);
  assert.equal(logAfter.code, 0, logAfter.stderr);
  assert.equal(parseNdjson(logAfter.stdout).length, 2, "the freed entry left the log");

  const restore = await snaplogCli(storePath, ["--json", "restore", "vm1", "--at", "lsn:4", "--to", join(directory, "vm1.raw")]);
  assert.equal(restore.code, 0, restore.stderr);
  assert.equal((JSON.parse(restore.stdout) as RestoreResult).file?.path, join(directory, "vm1.raw"));
  const image = readFileSync(join(directory, "vm1.raw"));
  assert.deepEqual(
    image.subarray(0, 3 * blockSizeBytes),
    Buffer.concat([Buffer.alloc(blockSizeBytes, "y"), Buffer.alloc(2 * blockSizeBytes, "z")]),
  );
  assert.ok(image.subarray(3 * blockSizeBytes).every((byte) => byte === 0));

  const policy = await snaplogCli(storePath, ["--json", "policy", "set", "vm1", "--compact-on-delete", "off"]);
  const shown = JSON.parse(policy.stdout) as Record<string, unknown>;
  assert.deepEqual(
    { historySeconds: shown.historySeconds, autoCompact: shown.autoCompact, compactOnDelete: shown.compactOnDelete },
    { historySeconds: 1, autoCompact: false, compactOnDelete: false },
  );
  for (const [args, code, pattern] of [
    [["log", "nodisk"], 3, /^snaplog: no disk named "nodisk"\n$/],
    [["diff", "vm1", "lsn:99", "current"], 3, /^snaplog: LSN 99 of disk vm1 is in the future/],
    [["restore", "vm1", "--at", "lsn:4", "--rollback", "--to", "x.raw"], 2, /exactly one/],
  ] as const) {
    const result = await snaplogCli(storePath, [...args]);
    assert.equal(result.code, code, result.stderr);
    assert.match(result.stderr, pattern);
    assert.equal(result.stdout, "");
  }
  await server.stop();
});
