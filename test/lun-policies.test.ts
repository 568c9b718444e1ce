/**
 * Goal: each LUN policy of SPEC §4.5 hands out the LUNs it promises, a LUN names one volume at
 * a time store-wide, `lun:N` attaches whoever holds N now, and all of it survives a reopen and a
 * crash between the LUN's persistence and the snapshot's cut. Method: the store library on a
 * real temp directory; every check goes through what users see (snapshot list, export list and
 * descriptions, resolving `lun:N`), compared with the holders each case expects. The same
 * policies through the real CLI, a `snaplog serve` child and `nbdinfo --list` are in
 * lun-policies-cli.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Store } from "../src/store/store.js";
import { ErrorCodes, SnaplogError } from "../src/util/errors.js";
import { encodeJsonFile } from "../src/util/json-file.js";
import { tempDir } from "./support/temp-dir.js";

const MiB = 1024 * 1024;

function hasCode(code: string, message?: RegExp): (error: unknown) => boolean {
  return (error: unknown) => error instanceof SnaplogError && error.code === code && (message === undefined || message.test(error.message));
}

async function newStore(prefix: string, disks: string[]): Promise<{ storePath: string; store: Store }> {
  const storePath = join(tempDir(prefix), "store");
  await Store.init(storePath);
  const store = await Store.open(storePath);
  for (const name of disks) await store.createDisk({ name, sizeBytes: MiB });
  return { storePath, store };
}

/** name → LUN (null: none) of every snapshot of `disk`, as `snapshot list` shows them. */
async function luns(store: Store, disk: string): Promise<Record<string, number | null>> {
  const result: Record<string, number | null> = {};
  for (const snapshot of await store.listSnapshots(disk)) result[snapshot.name] = snapshot.lun;
  return result;
}

/** The export `lun:N` attaches (undefined: none holds N). */
function attached(store: Store, lun: number): string | undefined {
  try {
    const volume = store.resolve(`lun:${lun}`);
    volume.release();
    return volume.name;
  } catch (error) {
    if (error instanceof SnaplogError && error.code === ErrorCodes.NOT_FOUND) return undefined;
    throw error;
  }
}

/** Every LUN shown in any listing (disks, snapshot list, export descriptions) is shown once: one volume per LUN. */
async function assertUnique(store: Store): Promise<void> {
  const seen = new Map<number, string>();
  const note = (lun: number | null, who: string): void => {
    if (lun === null) return;
    assert.equal(seen.get(lun), undefined, `LUN ${lun} shown for ${who} and ${seen.get(lun)}`);
    seen.set(lun, who);
    assert.equal(attached(store, lun), who, `lun:${lun} attaches its holder`);
  };
  for (const disk of await store.listDisks()) {
    note(disk.lun, disk.name);
    for (const snapshot of await store.listSnapshots(disk.name)) note(snapshot.lun, `${disk.name}@${snapshot.name}`);
  }
  for (const info of store.list()) {
    const match = /, LUN (\d+),/.exec(info.description);
    if (match !== null) assert.equal(seen.get(Number(match[1])), info.name, `description of ${info.name}`);
  }
}

function readStoreJson(storePath: string): Record<string, unknown> {
  return (JSON.parse(readFileSync(join(storePath, "store.json"), "utf8")) as { body: Record<string, unknown> }).body;
}

test("sequential: one above the highest LUN ever used; a deleted snapshot's LUN is never handed out again", async () => {
  const { storePath, store } = await newStore("lun-sequential", ["a", "b"]);
  let reopened: Store | undefined;
  try {
    assert.deepEqual(
      (await store.listDisks()).map((disk) => disk.lun),
      [1, 2],
    );
    for (const name of ["s1", "s2", "s3"]) await store.createSnapshot({ disk: "a", name });
    assert.deepEqual(await luns(store, "a"), { s1: 3, s2: 4, s3: 5 });
    await store.deleteSnapshot("a", "s3");
    await store.createSnapshot({ disk: "b", name: "t1" });
    assert.deepEqual(await luns(store, "b"), { t1: 6 }, "5 is not reused");
    await store.createSnapshot({ disk: "b", name: "t2", lun: 5 });
    assert.equal((await luns(store, "b")).t2, 5, "a free LUN may still be asked for");
    await assert.rejects(
      store.createSnapshot({ disk: "a", name: "x", lun: 4 }),
      hasCode(ErrorCodes.ALREADY_EXISTS, /LUN 4 is already held by snapshot s2 of disk a/),
    );
    await assert.rejects(store.createSnapshot({ disk: "a", name: "x", lun: 1 }), hasCode(ErrorCodes.ALREADY_EXISTS, /held by disk a/));
    await assertUnique(store);
    await store.close();
    reopened = await Store.open(storePath);
    await reopened.createSnapshot({ disk: "a", name: "s4" });
    assert.equal((await luns(reopened, "a")).s4, 7, "lunNext survives the reopen");
    await assertUnique(reopened);
  } finally {
    await store.close();
    await reopened?.close();
  }
});

test("pool: released LUNs come back lowest first, shared by pool disks, persisted in store.json", async () => {
  const { storePath, store } = await newStore("lun-pool", ["p", "q", "seq"]);
  let reopened: Store | undefined;
  try {
    await store.setPolicy({ disk: "p", lunPolicy: "pool" });
    await store.setPolicy({ disk: "q", lunPolicy: "pool" });
    for (const name of ["p1", "p2", "p3", "p4"]) await store.createSnapshot({ disk: "p", name });
    assert.deepEqual(await luns(store, "p"), { p1: 4, p2: 5, p3: 6, p4: 7 });
    await store.deleteSnapshot("p", "p3");
    await store.deleteSnapshot("p", "p1");
    assert.deepEqual(readStoreJson(storePath).lunPool, [
      [4, 4],
      [6, 6],
    ]);
    // A sequential disk's release does not enter the pool; a pooled LUN asked for is taken out of it.
    await store.createSnapshot({ disk: "seq", name: "x" });
    await store.deleteSnapshot("seq", "x");
    await store.createSnapshot({ disk: "seq", name: "y", lun: 6 });
    await store.close();

    reopened = await Store.open(storePath);
    await reopened.createSnapshot({ disk: "q", name: "q1" });
    await reopened.createSnapshot({ disk: "p", name: "p5" });
    await reopened.createSnapshot({ disk: "q", name: "q2" });
    assert.deepEqual(await luns(reopened, "q"), { q1: 4, q2: 10 }, "lowest pooled first (6 was taken), then a new one");
    assert.equal((await luns(reopened, "p")).p5, 9, "the pool is empty: a new LUN");
    assert.equal(readStoreJson(storePath).lunPool, undefined, "an empty pool is left out");
    await assertUnique(reopened);

    // Deleting a pool disk returns every LUN it held.
    await reopened.deleteDisk("q");
    assert.deepEqual(readStoreJson(storePath).lunPool, [
      [2, 2],
      [4, 4],
      [10, 10],
    ]);
  } finally {
    await store.close();
    await reopened?.close();
  }
});

test("constant: each new snapshot takes N, the previous holder keeps its name and loses the LUN, for good", async () => {
  const { storePath, store } = await newStore("lun-constant", ["c", "o"]);
  let reopened: Store | undefined;
  try {
    await store.createSnapshot({ disk: "c", name: "before" });
    await store.setPolicy({ disk: "c", lunPolicy: "constant", lun: 40 });
    // Reserved from now on: nobody else gets 40, not even when lunNext reaches it.
    await assert.rejects(
      store.createSnapshot({ disk: "o", name: "x", lun: 40 }),
      hasCode(ErrorCodes.ALREADY_EXISTS, /reserved by the constant LUN policy of disk c/),
    );
    await assert.rejects(
      store.setPolicy({ disk: "o", lunPolicy: "constant", lun: 40 }),
      hasCode(ErrorCodes.INVALID_ARGUMENT, /already held by the constant LUN policy of disk c/),
    );
    await store.createSnapshot({ disk: "o", name: "o1" });
    assert.equal((await luns(store, "o")).o1, 41, "lunNext was raised past the reserved LUN");
    await assert.rejects(
      store.createSnapshot({ disk: "c", name: "x", lun: 7 }),
      hasCode(ErrorCodes.INVALID_ARGUMENT, /constant 40: every snapshot takes LUN 40/),
    );

    for (const name of ["c1", "c2", "c3"]) await store.createSnapshot({ disk: "c", name });
    assert.deepEqual(await luns(store, "c"), { before: 3, c1: null, c2: null, c3: 40 });
    assert.equal(attached(store, 40), "c@c3");
    assert.match(store.list().find((info) => info.name === "c@c1")?.description ?? "", /no LUN \(LUN 40 passed to a newer snapshot\)/);
    assert.deepEqual(
      store
        .list()
        .find((info) => info.name === "c@c3")
        ?.description.match(/LUN 40,/)?.[0],
      "LUN 40,",
    );
    await assertUnique(store);

    // The holder deleted: nobody holds 40 (the older snapshots do not get it back); the next snapshot does.
    const deleted = await store.deleteSnapshot("c", "c3");
    assert.equal(deleted.lun, 40);
    assert.equal(attached(store, 40), undefined);
    assert.deepEqual(await luns(store, "c"), { before: 3, c1: null, c2: null });
    const lost = await store.deleteSnapshot("c", "c1");
    assert.equal(lost.lun, null, "a snapshot without a LUN releases none");
    await store.createSnapshot({ disk: "c", name: "c4" });
    await store.close();

    reopened = await Store.open(storePath);
    assert.deepEqual(await luns(reopened, "c"), { before: 3, c2: null, c4: 40 });
    assert.equal(attached(reopened, 40), "c@c4");
    await assertUnique(reopened);

    // Another policy frees the reservation; the holder keeps 40 until deleted.
    await reopened.setPolicy({ disk: "c", lunPolicy: "sequential" });
    await reopened.createSnapshot({ disk: "c", name: "c5" });
    assert.deepEqual(await luns(reopened, "c"), { before: 3, c2: null, c4: 40, c5: 42 });
    await reopened.deleteSnapshot("c", "c4");
    await reopened.createSnapshot({ disk: "o", name: "o2", lun: 40 });
    assert.deepEqual(await luns(reopened, "c"), { before: 3, c2: null, c5: 42 }, "c2 stays without a LUN");
    assert.equal(attached(reopened, 40), "o@o2");
    await assertUnique(reopened);
  } finally {
    await store.close();
    await reopened?.close();
  }
});

test("explicit: every snapshot needs --lun; refusals of SPEC §4 change nothing", async () => {
  const { storePath, store } = await newStore("lun-explicit", ["e", "f"]);
  try {
    await store.setPolicy({ disk: "e", lunPolicy: "explicit" });
    await assert.rejects(
      store.createSnapshot({ disk: "e", name: "x" }),
      hasCode(ErrorCodes.INVALID_ARGUMENT, /LUN policy explicit: give the snapshot its LUN with --lun N/),
    );
    await assert.rejects(
      store.restore({ disk: "e", at: "lsn:0", asSnapshot: "r" }),
      hasCode(ErrorCodes.INVALID_ARGUMENT, /explicit/),
      "a restore as a snapshot follows the policy too",
    );
    await store.createSnapshot({ disk: "e", name: "e1", lun: 100 });
    await store.createSnapshot({ disk: "e", name: "e2", lun: 50 });
    await assert.rejects(
      store.createSnapshot({ disk: "f", name: "x", lun: 100 }),
      hasCode(ErrorCodes.ALREADY_EXISTS, /LUN 100 is already held by snapshot e1 of disk e/),
    );
    await store.createSnapshot({ disk: "f", name: "f1" });
    assert.equal((await luns(store, "f")).f1, 101, "sequential goes above the highest LUN ever used");
    const before = readFileSync(join(storePath, "store.json"));
    await assert.rejects(
      store.setPolicy({ disk: "e", snapshotEverySeconds: 3600 }),
      hasCode(ErrorCodes.INVALID_ARGUMENT, /explicit needs a --lun/),
    );
    await assert.rejects(
      store.setPolicy({ disk: "f", lunPolicy: "constant" }),
      hasCode(ErrorCodes.INVALID_ARGUMENT, /constant needs --lun N/),
    );
    await assert.rejects(
      store.setPolicy({ disk: "f", lunPolicy: "constant", lun: 2 }),
      hasCode(ErrorCodes.INVALID_ARGUMENT, /LUN 2 is already held by disk f/),
    );
    await assert.rejects(
      store.setPolicy({ disk: "f", lunPolicy: "constant", lun: 100 }),
      hasCode(ErrorCodes.INVALID_ARGUMENT, /held by snapshot e1 of disk e/),
    );
    assert.deepEqual(readFileSync(join(storePath, "store.json")), before, "a refusal writes nothing");
    assert.equal((await store.showPolicy("f")).lunPolicy, "sequential");
    await assertUnique(store);
  } finally {
    await store.close();
  }
});

test("a crash after a LUN is persisted and before the cut: the LUN is never handed out twice", async () => {
  const { storePath, store } = await newStore("lun-crash", ["c", "p"]);
  try {
    await store.setPolicy({ disk: "c", lunPolicy: "constant", lun: 9 });
    await store.setPolicy({ disk: "p", lunPolicy: "pool" });
    await store.createSnapshot({ disk: "c", name: "c1" });
    await store.createSnapshot({ disk: "c", name: "c2" });
    for (const name of ["p1", "p2"]) await store.createSnapshot({ disk: "p", name });
    await store.deleteSnapshot("p", "p1");
  } finally {
    await store.close();
  }
  // What store.json holds when a kill lands between its write and the journal's: c3 took 9 over
  // and p3 took the pool's 10, but neither snapshot was cut.
  const body = readStoreJson(storePath);
  assert.deepEqual(body.lunPool, [[10, 10]]);
  assert.deepEqual(body.lunHolders, { 9: { disk: "c", snapshot: "c2" } });
  const crashed = { ...body, lunPool: undefined, lunHolders: { 9: { disk: "c", snapshot: "c3" } } };
  writeFileSync(join(storePath, "store.json"), encodeJsonFile(crashed));

  const reopened = await Store.open(storePath);
  try {
    assert.deepEqual(await luns(reopened, "c"), { c1: null, c2: null }, "c2 lost 9 to a snapshot that never was: nobody holds it");
    assert.equal(attached(reopened, 9), undefined);
    await reopened.createSnapshot({ disk: "c", name: "c3" });
    await reopened.createSnapshot({ disk: "p", name: "p3" });
    assert.deepEqual(await luns(reopened, "c"), { c1: null, c2: null, c3: 9 });
    assert.deepEqual(await luns(reopened, "p"), { p2: 11, p3: 12 }, "10 is lost, not handed out again");
    await assertUnique(reopened);
  } finally {
    await reopened.close();
  }
});
