/**
 * Goal: the LUN policies of SPEC §4.5 as a user meets them: set and refused with `snaplog policy
 * set`, snapshots made with `snaplog snapshot create`, holders seen in `snapshot list` and in
 * `nbdinfo --list` descriptions, and `lun:N` attaching the volume that holds N now, across a
 * clean restart and a SIGKILL of the server.
 * Method: a store in a temp directory, `snaplog serve` as a child (test/support/serve-child.ts),
 * every change through the real CLI (which goes through the server's API), every check through
 * nbdinfo (listings on the unix socket, lun:N over TCP) and the CLI's JSON. Four disks, one per policy.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { runOk, runTool } from "./support/interop-tools.js";
import { requireTool } from "./support/nbd-server.js";
import { killServeChildren, snaplogCli, startServeChild, type ServeChild } from "./support/serve-child.js";
import { tempDir } from "./support/temp-dir.js";

const directory = tempDir("lun-cli");
const storePath = join(directory, "store");
const socketPath = join(directory, "nbd.sock");
const haveNbdinfo = requireTool("nbdinfo");
let serve: ServeChild;

after(killServeChildren);

before(async () => {
  await cli("init");
  serve = await startServeChild(storePath, socketPath);
  for (const disk of ["seq", "pool", "const", "expl"]) await cli("disk", "create", disk, "--size", "1M");
});

async function cli(...args: string[]): Promise<string> {
  const run = await snaplogCli(storePath, args);
  assert.equal(run.code, 0, `snaplog ${args.join(" ")}: ${run.stderr}`);
  return run.stdout;
}

async function cliFails(code: number, pattern: RegExp, ...args: string[]): Promise<void> {
  const run = await snaplogCli(storePath, args);
  assert.equal(run.code, code, `snaplog ${args.join(" ")}: ${run.stdout} ${run.stderr}`);
  assert.match(run.stderr, pattern);
}

/** name → LUN (null: none) of each snapshot of `disk`, from `snapshot list --json`. */
async function snapshotLuns(disk: string): Promise<Record<string, number | null>> {
  const listed = JSON.parse(await cli("--json", "snapshot", "list", disk)) as Array<{ name: string; lun: number | null }>;
  return Object.fromEntries(listed.map((snapshot) => [snapshot.name, snapshot.lun]));
}

/**
 * export name → the LUN in its nbdinfo --list description ("none": "no LUN"). On the unix socket:
 * over TCP libnbd 1.14 waits 200 ms per export (nbd-handshake.test.ts lists over TCP).
 */
async function listedLuns(): Promise<Record<string, string>> {
  const listing = await runOk("nbdinfo", ["--list", "--json", `nbd+unix:///?socket=${serve.socketPath}`]);
  const exports = (JSON.parse(listing.stdout) as { exports: Array<{ "export-name": string; description?: string }> }).exports;
  const luns: Record<string, string> = {};
  for (const item of exports) {
    const description = item.description ?? "";
    if (description.startsWith("baseline")) continue;
    luns[item["export-name"]] = /, no LUN \(/.test(description) ? "none" : (/, LUN (\d+),/.exec(description)?.[1] ?? "?");
  }
  return luns;
}

/** The description nbdinfo gets for `lun:N` (what it attaches), or undefined when nothing holds N. */
async function lunDescription(lun: number): Promise<string | undefined> {
  const run = await runTool("nbdinfo", ["--json", serve.uri(`lun:${lun}`)]);
  if (run.code !== 0) {
    assert.match(run.stderr, /No such file or directory for export: lun:/, "NBD_REP_ERR_UNKNOWN");
    return undefined;
  }
  return (JSON.parse(run.stdout) as { exports: Array<{ description: string }> }).exports[0].description;
}

test("policies are set or refused whole through the CLI", async () => {
  assert.match(await cli("policy", "set", "pool", "--lun-policy", "pool"), /pool/);
  await cli("policy", "set", "const", "--lun-policy", "constant", "--lun", "50");
  await cli("policy", "set", "expl", "--lun-policy", "explicit");
  await cliFails(2, /--lun-policy constant needs --lun N/, "policy", "set", "seq", "--lun-policy", "constant");
  await cliFails(2, /LUN 1 is already held by disk seq/, "policy", "set", "seq", "--lun-policy", "constant", "--lun", "1");
  await cliFails(
    2,
    /LUN 50 is already held by the constant LUN policy of disk const/,
    "policy",
    "set",
    "seq",
    "--lun-policy",
    "constant",
    "--lun",
    "50",
  );
  await cliFails(2, /explicit needs a --lun for every snapshot/, "policy", "set", "expl", "--snapshot-every", "1h");
  const shown = JSON.parse(await cli("--json", "policy", "show", "const")) as { lunPolicy: string; lun: number };
  assert.deepEqual([shown.lunPolicy, shown.lun], ["constant", 50]);
});

test("each policy hands out its LUNs; the constant LUN moves to the newest snapshot; nbdinfo shows the holders", async (t) => {
  if (!haveNbdinfo) return t.skip("nbdinfo is not installed");
  for (const name of ["c1", "c2", "c3"]) assert.match(await cli("snapshot", "create", "const", "--name", name), /: LUN 50, /);
  for (const name of ["p1", "p2", "p3"]) await cli("snapshot", "create", "pool", "--name", name);
  assert.deepEqual(await snapshotLuns("pool"), { p1: 51, p2: 52, p3: 53 });
  assert.match(await cli("snapshot", "delete", "pool", "p1"), /LUN 51 released/);
  assert.match(await cli("snapshot", "create", "pool", "--name", "p4"), /: LUN 51, /, "the pooled LUN first");
  await cliFails(2, /LUN policy explicit: give the snapshot its LUN with --lun N/, "snapshot", "create", "expl", "--name", "e0");
  assert.match(await cli("snapshot", "create", "expl", "--name", "e1", "--lun", "7"), /: LUN 7, /);
  await cliFails(4, /LUN 52 is already held by snapshot p2 of disk pool/, "snapshot", "create", "expl", "--name", "e2", "--lun", "52");
  assert.match(await cli("snapshot", "create", "seq", "--name", "s1"), /: LUN 54, /);

  assert.deepEqual(await snapshotLuns("const"), { c1: null, c2: null, c3: 50 });
  const table = await cli("snapshot", "list", "const");
  assert.match(table, /^c1\s+-\s+\d+/m, "the table shows - for no LUN");
  assert.deepEqual(await listedLuns(), {
    seq: "1",
    pool: "2",
    const: "3",
    expl: "4",
    "const@c1": "none",
    "const@c2": "none",
    "const@c3": "50",
    "expl@e1": "7",
    "pool@p2": "52",
    "pool@p3": "53",
    "pool@p4": "51",
    "seq@s1": "54",
  });
  assert.match((await lunDescription(50)) ?? "", /^snapshot c3 of disk const, LUN 50,/);
  assert.match((await lunDescription(51)) ?? "", /^snapshot p4 of disk pool, LUN 51,/);
  assert.match((await lunDescription(3)) ?? "", /^disk const, LUN 3, read-write/);
});

test("after a clean restart and after a SIGKILL the holders, the pool and lun:N are the same", async (t) => {
  if (!haveNbdinfo) return t.skip("nbdinfo is not installed");
  const before = await listedLuns();
  await serve.stop();
  serve = await startServeChild(storePath, socketPath);
  assert.deepEqual(await listedLuns(), before, "after a clean restart");
  assert.match((await lunDescription(50)) ?? "", /^snapshot c3 of disk const/);

  // The holder deleted: nobody holds 50, and the older snapshots stay without it.
  assert.match(await cli("snapshot", "delete", "const", "c3"), /LUN 50 released/);
  assert.equal(await lunDescription(50), undefined);
  assert.match(await cli("snapshot", "delete", "pool", "p3"), /LUN 53 released/);
  await serve.kill();
  serve = await startServeChild(storePath, socketPath);
  assert.equal(await lunDescription(50), undefined, "after a SIGKILL");
  assert.deepEqual(await snapshotLuns("const"), { c1: null, c2: null });
  assert.match(await cli("snapshot", "create", "const", "--name", "c4"), /: LUN 50, /);
  assert.match(await cli("snapshot", "create", "pool", "--name", "p5"), /: LUN 53, /, "the pool survived the SIGKILL");
  assert.match(await cli("snapshot", "create", "pool", "--name", "p6"), /: LUN 55, /, "then a new one");
  assert.match((await lunDescription(50)) ?? "", /^snapshot c4 of disk const, LUN 50,/);
  const listed = await listedLuns();
  assert.equal(listed["const@c1"], "none");
  assert.equal(listed["const@c4"], "50");
  assert.equal(Object.values(listed).filter((lun) => lun === "50").length, 1, "one volume per LUN");
  await serve.stop();
});
