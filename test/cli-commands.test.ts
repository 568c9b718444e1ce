/**
 * Goal: the CLI without a server (direct mode) keeps SPEC §3.2 and §2 "Bad input gets a
 * clear answer and changes nothing". Method: spawn the real binary (dist/src/cli/main.js)
 * in a temp directory; for each bad command check exit code, exactly one `snaplog:` line on
 * stderr (plus an optional `hint:` line), and that the store's files and `disk list --json`
 * are byte-for-byte the same afterwards. Good commands' --json output must parse.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { assertFailure, assertSuccess, cliForStore, fingerprint, runCli } from "./support/cli.js";

const directory = mkdtempSync(join(tmpdir(), "snaplog-cli-"));
const storePath = join(directory, "store");
const snaplog = cliForStore(storePath, { cwd: directory });

function run(args: string[], env: Record<string, string> = {}) {
  return runCli(args, { cwd: directory, env });
}

before(() => {
  assertSuccess(snaplog("init"));
  assertSuccess(snaplog("disk", "create", "vm1", "--size", "4M"));
});
after(() => rmSync(directory, { recursive: true, force: true }));

test("init twice: the second fails with one line and leaves the store as it was", () => {
  const before = fingerprint(storePath);
  assertFailure(snaplog("init"), 4, /already exists/);
  assertFailure(snaplog("init", "--block-size", "64K"), 4);
  assertFailure(snaplog("init", "--block-size", "1000"), 2, /block size/);
  assert.equal(fingerprint(storePath), before);
});

/** The store's logical state: every disk with its snapshots, as the CLI reports it. */
function logicalState(): string {
  const disks = JSON.parse(snaplog("--json", "disk", "list").stdout) as Array<{ name: string }>;
  return JSON.stringify(disks.map((disk) => JSON.parse(snaplog("--json", "disk", "show", disk.name).stdout)));
}

test("bad arguments are refused before the store is touched: one line, exit 2, files unchanged", () => {
  const filesBefore = fingerprint(storePath);
  const cases: Array<{ args: string[]; code: number; pattern?: RegExp }> = [
    { args: ["disk", "create", "vm2", "--size", "abc"], code: 2, pattern: /invalid size "abc"/ },
    { args: ["disk", "create", "vm2", "--size", "-1"], code: 2, pattern: /negative/ },
    { args: ["disk", "create", "vm2", "--size", "0"], code: 2 },
    { args: ["disk", "create", "vm2", "--size", "1.5"], code: 2, pattern: /whole number of bytes/ },
    { args: ["disk", "create", "vm2", "--size", "10GB"], code: 2, pattern: /unit/ },
    { args: ["disk", "create", "vm2", "--size", "1M", "--history", "soon"], code: 2 },
    { args: ["disk", "create", "vm2", "--size", "1M", "--block-size", "3000"], code: 2 },
    { args: ["disk", "create", "vm2", "--size", "1M", "--from", "missing.raw"], code: 2, pattern: /missing\.raw/ },
    { args: ["disk", "create", "vm2"], code: 2, pattern: /--size/ },
    { args: ["disk", "create", "a b", "--size", "1M"], code: 2, pattern: /name/ },
    { args: ["disk", "create", "a/b", "--size", "1M"], code: 2 },
    { args: ["disk", "create", "..", "--size", "1M"], code: 2 },
    { args: ["disk", "create", "x".repeat(65), "--size", "1M"], code: 2 },
    { args: ["disk", "create", "vm@1", "--size", "1M"], code: 2 },
    { args: ["snapshot", "create", "vm1", "--name", "bad name"], code: 2 },
    { args: ["snapshot", "create", "vm1", "--lun", "x"], code: 2 },
    { args: ["disk", "list", "--bogus"], code: 2, pattern: /unknown option/ },
    { args: ["bogus"], code: 2, pattern: /unknown command/ },
  ];
  for (const { args, code, pattern } of cases) assertFailure(snaplog(...args), code, pattern);
  assert.equal(fingerprint(storePath), filesBefore);
});

test("requests the store refuses: one line, non-zero exit, disks and snapshots unchanged", () => {
  const stateBefore = logicalState();
  const cases: Array<{ args: string[]; code: number; pattern?: RegExp }> = [
    { args: ["disk", "create", "vm1", "--size", "1M"], code: 4, pattern: /vm1/ },
    { args: ["snapshot", "create", "nodisk"], code: 3, pattern: /nodisk/ },
    { args: ["snapshot", "create", "vm1", "--lun", "0"], code: 2 },
    { args: ["snapshot", "list", "nodisk"], code: 3 },
    { args: ["disk", "show", "nodisk"], code: 3 },
    { args: ["disk", "delete", "nodisk"], code: 3 },
  ];
  for (const { args, code, pattern } of cases) assertFailure(snaplog(...args), code, pattern);
  assert.equal(logicalState(), stateBefore);
});

test("--json output parses and carries the Operations fields", () => {
  const created = JSON.parse(snaplog("--json", "disk", "create", "j1", "--size", "1MiB", "--history", "15m", "--block-size", "512").stdout);
  assert.deepEqual([created.name, created.sizeBytes, created.blockSizeBytes, created.historySeconds], ["j1", 1 << 20, 512, 900]);
  const snapshot = JSON.parse(snaplog("--json", "snapshot", "create", "j1", "--name", "first").stdout);
  assert.deepEqual([snapshot.disk, snapshot.name], ["j1", "first"]);
  assert.ok(Number.isInteger(snapshot.lun) && Number.isInteger(snapshot.lsn) && !Number.isNaN(Date.parse(snapshot.createdAt)));
  const snapshots = JSON.parse(snaplog("--json", "snapshot", "list", "j1").stdout);
  assert.deepEqual(snapshots, [snapshot]);
  const detail = JSON.parse(snaplog("--json", "disk", "show", "j1").stdout);
  assert.deepEqual(detail.snapshots, [snapshot]);
  const status = JSON.parse(snaplog("--json", "status").stdout);
  assert.equal(status.mode, "direct");
  assert.equal(status.path, storePath);
  assert.ok(status.disks.some((disk: { name: string }) => disk.name === "j1"));
  // A store opened directly serves nothing; the answer keeps its shape (nbd before disks), and the version is package.json's.
  assert.deepEqual(status.nbd, []);
  assert.deepEqual(Object.keys(status).slice(-2), ["nbd", "disks"]);
  assert.equal(status.version, JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")).version);
  assert.equal(snaplog("--version").stdout.trim(), status.version);
  assert.deepEqual(JSON.parse(snaplog("--json", "disk", "delete", "j1").stdout), { deleted: "j1" });
  assert.ok(!JSON.parse(snaplog("--json", "disk", "list").stdout).some((disk: { name: string }) => disk.name === "j1"));
});

test("human output: snapshot create prints name, LUN, LSN and time", () => {
  const result = snaplog("snapshot", "create", "vm1", "--name", "human");
  assertSuccess(result);
  assert.match(result.stdout, /^created snapshot human of vm1: LUN \d+, LSN \d+, at \d{4}-\d\d-\d\dT/);
  assert.match(snaplog("disk", "list").stdout, /^NAME +SIZE/);
});

test("--from makes the image the baseline", () => {
  const imagePath = join(directory, "image.raw");
  writeFileSync(imagePath, Buffer.alloc(64 * 1024, 7));
  const created = JSON.parse(run(["--store", storePath, "--json", "disk", "create", "img", "--size", "64K", "--from", "image.raw"]).stdout);
  assert.equal(created.hasBaseline, true);
});

test("no store: NO_STORE with a hint; SNAPLOG_STORE picks the store", () => {
  const missing = run(["disk", "list"]);
  assertFailure(missing, 6, /no store/);
  assert.match(missing.stderr, /\nhint: .*snaplog init/);
  const viaEnv = run(["--json", "disk", "list"], { SNAPLOG_STORE: storePath });
  assert.equal(viaEnv.code, 0, viaEnv.stderr);
  assert.ok(JSON.parse(viaEnv.stdout).some((disk: { name: string }) => disk.name === "vm1"));
});

test("--help helps: examples for disk create and serve, exit 0", () => {
  for (const args of [
    ["disk", "create", "--help"],
    ["serve", "--help"],
  ]) {
    const result = run(args);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /Examples:\n +\$ snaplog /);
  }
  assert.equal(run(["--version"]).code, 0);
  assert.equal(run(["disk"]).code, 2, "a missing subcommand is a usage error");
});
