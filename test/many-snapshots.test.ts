/**
 * Goal: a disk with thousands of snapshots stays usable (issue 9 item 7): every way of listing
 * them completes and agrees, and a real client lists them all over NBD (with a count limit on
 * handshake options, nbdinfo --list failed past about 60 snapshots).
 * Method: bench/many-snapshots.ts at a small count (SNAPLOG_MANY_SNAPSHOTS, default 2,000): the
 * snapshots cut through the store library, then the operations, the HTTP API, the export list,
 * every export resolved, `lun:N` for every LUN and a reopened store must all show the same
 * snapshots with the same LUNs. Then `snaplog serve` on that store: `nbdinfo --list` (on the
 * unix socket) must show every export with its LUN in the description, and the CLI (through the
 * API) the same list.
 * Times are the benchmark's business; here only a generous bound per step.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { BENCH_DISK, runManySnapshots, type ManySnapshotsResult } from "../bench/many-snapshots.js";
import { runOk } from "./support/interop-tools.js";
import { requireTool } from "./support/nbd-server.js";
import { killServeChildren, snaplogCli, startServeChild } from "./support/serve-child.js";
import { tempDir } from "./support/temp-dir.js";

const snapshotCount = Number(process.env.SNAPLOG_MANY_SNAPSHOTS ?? 2000);
const directory = tempDir("many-snapshots");
const storePath = join(directory, "store");
let result: ManySnapshotsResult | undefined;

after(killServeChildren);

test(`${snapshotCount} snapshots: every listing completes and agrees`, { timeout: 300_000 }, async () => {
  result = await runManySnapshots(storePath, snapshotCount, () => undefined);
  const { found } = result;
  assert.equal(found.listed.length, snapshotCount);
  const expected = Array.from({ length: snapshotCount }, (_, index) => `s${String(index + 1).padStart(String(snapshotCount).length, "0")}`);
  assert.deepEqual(
    found.listed.map((row) => row.split("\t")[0]),
    expected,
    "in creation order",
  );
  // Snapshot LUNs follow the disk's (1), one each, in order (sequential policy).
  assert.deepEqual(
    found.listed.map((row) => Number(row.split("\t")[1])),
    expected.map((_, index) => index + 2),
  );
  assert.deepEqual(found.shown, found.listed, "disk show");
  assert.deepEqual(found.apiListed, found.listed, "GET /v1/disks/NAME/snapshots");
  assert.deepEqual(found.apiShown, found.listed, "GET /v1/disks/NAME");
  assert.deepEqual(found.reopened, found.listed, "after a reopen");
  assert.equal(found.policyDisk, "sequential");
  assert.equal(found.exports.length, snapshotCount + 2, "the disk, its baseline and every snapshot");
  assert.deepEqual(found.resolved, found.exports, "each export resolves to what the list says");
  assert.deepEqual(
    found.lunHolders,
    expected.map((name) => `${BENCH_DISK}@${name}`),
    "lun:N attaches its holder",
  );
  for (const [index, row] of found.listed.entries()) {
    const [name, lun, lsn] = row.split("\t");
    assert.match(
      found.exports[index + 2],
      new RegExp(`^${BENCH_DISK}@${name}\tsnapshot ${name} of disk ${BENCH_DISK}, LUN ${lun}, LSN ${lsn},`),
    );
  }
});

test(`nbdinfo --list shows all ${snapshotCount} snapshots of the served store, with their LUNs`, { timeout: 300_000 }, async (t) => {
  if (result === undefined) return t.skip("the store was not built");
  if (!requireTool("nbdinfo")) return t.skip("nbdinfo is not installed");
  const serve = await startServeChild(storePath, join(directory, "nbd.sock"));
  try {
    // The unix socket: over TCP, libnbd 1.14 waits about 200 ms per export in its own kernel
    // (MSG_MORE on LIST_META_CONTEXT; nbd-handshake.test.ts lists over TCP, BENCHMARKS.md times it).
    const startedMs = Date.now();
    const listing = await runOk("nbdinfo", ["--list", "--json", `nbd+unix:///?socket=${serve.socketPath}`], { timeoutMs: 240_000 });
    t.diagnostic(`nbdinfo --list of ${snapshotCount + 2} exports over the unix socket: ${Date.now() - startedMs} ms`);
    const exports = (JSON.parse(listing.stdout) as { exports: Array<{ "export-name": string; description?: string }> }).exports;
    assert.deepEqual(
      exports.map((item) => `${item["export-name"]}\t${item.description ?? ""}`),
      result.found.exports,
      "every export, in order, with its description",
    );
    assert.doesNotMatch(serve.stderr(), /too many options|handshake/, "no handshake limit met");

    const cli = await snaplogCli(storePath, ["--json", "snapshot", "list", BENCH_DISK]);
    assert.equal(cli.code, 0, cli.stderr);
    const listed = JSON.parse(cli.stdout) as Array<{ name: string; lun: number; lsn: number }>;
    assert.deepEqual(
      listed.map((snapshot) => `${snapshot.name}\t${snapshot.lun}\t${snapshot.lsn}`),
      result.found.listed,
      "snapshot list through the server's API",
    );
  } finally {
    await serve.stop();
  }
});
