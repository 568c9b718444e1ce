/**
 * Goal: the history commands of SPEC §3.2 work in direct mode (no server) on a real store:
 * `snapshot delete`, `policy show|set`, `compact`, `restore --to|--as-snapshot|--rollback`,
 * `log` and `diff` print what they did (text and --json; NDJSON for the streams), restored
 * bytes are the bytes that were written, and bad input gets one line and the mapped exit code
 * without changing anything. Method: write known data through the library (Store.open, a
 * volume's write), close the store, then spawn the real binary (dist/src/cli/main.js) and
 * check its output, its exit code, and the store again through the library.
 */
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type {
  CompactResult,
  DeleteSnapshotResult,
  DiffRun,
  DiskPolicy,
  LogEntry,
  RestoreResult,
  SnapshotInfo,
} from "../src/store/operations/index.js";
import { assertFailure, assertSuccess, cliForStore, fingerprint } from "./support/cli.js";
import { parseNdjson } from "./support/ndjson.js";
import { readExport as readStoreExport, withStore } from "./support/store-fixtures.js";
import { tempDir } from "./support/temp-dir.js";

const directory = tempDir("cli-history");
const storePath = join(directory, "store");
const blockSizeBytes = 4096;
const diskSizeBytes = 1 << 20;
const snaplog = cliForStore(storePath, { cwd: directory });

function succeed(...args: string[]): string {
  const result = snaplog(...args);
  assertSuccess(result, `snaplog ${args.join(" ")}`);
  return result.stdout;
}

function succeedJson<T>(...args: string[]): T {
  return JSON.parse(succeed("--json", ...args)) as T;
}

/** NDJSON: one JSON value per line, each line ending in a newline. */
function succeedNdjson<T>(...args: string[]): T[] {
  return parseNdjson(succeed("--json", ...args)) as T[];
}

type Change = { offsetBytes: number; data: Buffer } | { offsetBytes: number; trimBytes: number };

/**
 * Applies changes to a disk through the library, one after another (a few ms apart, so
 * each has its own time), keeping `image` (the expected current content) in step.
 */
async function change(disk: string, image: Buffer, changes: Change[], snapshotAfter?: string): Promise<void> {
  await withStore(storePath, async (store) => {
    const volume = store.resolve(disk);
    for (const item of changes) {
      if ("data" in item) {
        await volume.write(item.offsetBytes, item.data, { fua: false });
        item.data.copy(image, item.offsetBytes);
      } else {
        await volume.trim(item.offsetBytes, item.trimBytes, { fua: false });
        image.fill(0, item.offsetBytes, item.offsetBytes + item.trimBytes);
      }
      await volume.flush();
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    volume.release();
    if (snapshotAfter !== undefined) await store.createSnapshot({ disk, name: snapshotAfter });
  });
}

/** Bytes of an export (DISK, DISK@SNAPSHOT, ...) read through the library. */
function readExport(exportName: string, offsetBytes = 0, lengthBytes = diskSizeBytes): Promise<Buffer> {
  return readStoreExport(storePath, exportName, offsetBytes, lengthBytes);
}

function block(fill: string, blockCount = 1): Buffer {
  return Buffer.alloc(blockCount * blockSizeBytes, fill);
}

/** The log disk: a write, a two-block write, snapshot s1, a rewrite, a trim. */
const logImage = Buffer.alloc(diskSizeBytes);

before(async () => {
  succeed("init");
  for (const disk of ["lg", "del", "rst", "rb", "win"]) succeed("disk", "create", disk, "--size", "1M");
  succeed("disk", "create", "cmp", "--size", "1M", "--history", "1s");
  const text = Buffer.alloc(blockSizeBytes);
  text.write("hello log\n");
  await change(
    "lg",
    logImage,
    [
      { offsetBytes: 0, data: text },
      { offsetBytes: blockSizeBytes, data: block("b", 2) },
    ],
    "s1",
  );
  await change("lg", logImage, [
    { offsetBytes: 0, data: block("c") },
    { offsetBytes: blockSizeBytes, trimBytes: blockSizeBytes },
  ]);
});

test("log: one text line per row, with LSN range, time, kind, blocks and bytes; snapshot rows name the cut", () => {
  const lines = succeed("log", "lg").trimEnd().split("\n");
  const time = "\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z";
  const expected = [
    `^lsn 1 +${time}  write +block 0 \\+1  offset 0 length 4096$`,
    `^lsn 2-3 +${time}  write +block 1 \\+2  offset 4096 length 8192$`,
    `^lsn 3 +${time}  snapshot  s1 \\(LUN \\d+\\)$`,
    `^lsn 4 +${time}  write +block 0 \\+1  offset 0 length 4096$`,
    `^lsn 5 +${time}  trim +block 1 \\+1  offset 4096 length 4096$`,
  ];
  assert.equal(lines.length, expected.length, lines.join("\n"));
  lines.forEach((line, index) => assert.match(line, new RegExp(expected[index])));
});

test("log --json is NDJSON, one LogEntry per line, data as base64 with --data", () => {
  const entries = succeedNdjson<LogEntry>("log", "lg");
  assert.deepEqual(
    entries.map((entry) => [entry.kind, entry.lsnFirst, entry.lsnLast, entry.block, entry.blockCount]),
    [
      ["write", 1, 1, 0, 1],
      ["write", 2, 3, 1, 2],
      ["snapshot", 3, 3, 0, 0],
      ["write", 4, 4, 0, 1],
      ["trim", 5, 5, 1, 1],
    ],
  );
  assert.equal(entries[2].snapshot?.name, "s1");
  assert.ok(entries.every((entry) => entry.data === undefined));
  const withData = succeedNdjson<LogEntry>("log", "lg", "--data");
  assert.equal(Buffer.from(withData[0].data!, "base64").subarray(0, 10).toString(), "hello log\n");
  assert.deepEqual(Buffer.from(withData[1].data!, "base64"), block("b", 2));
});

test("log --data prints each row's bytes as a hexdump -C, repeated lines as *", () => {
  const lines = succeed("log", "lg", "--data", "--until", "lsn:1").trimEnd().split("\n");
  assert.match(lines[0], /^lsn 1 /);
  assert.deepEqual(lines.slice(1), [
    "00000000  68 65 6c 6c 6f 20 6c 6f  67 0a 00 00 00 00 00 00  |hello log.......|",
    "00000010  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|",
    "*",
    "00001000",
  ]);
  const second = succeed("log", "lg", "--data", "--since", "lsn:2", "--until", "lsn:2").trimEnd().split("\n");
  assert.deepEqual(second.slice(1), ["00001000  62 62 62 62 62 62 62 62  62 62 62 62 62 62 62 62  |bbbbbbbbbbbbbbbb|", "*", "00002000"]);
});

test("log --since, --until (LSN or time, inclusive) and --snapshot pick the rows", () => {
  const lsns = (...args: string[]) => succeedNdjson<LogEntry>("log", "lg", ...args).map((entry) => `${entry.kind}:${entry.lsnFirst}`);
  assert.deepEqual(lsns("--since", "lsn:2", "--until", "lsn:3"), ["write:2", "snapshot:3"]);
  assert.deepEqual(lsns("--snapshot", "s1"), ["write:1", "write:2", "snapshot:3"]);
  const all = succeedNdjson<LogEntry>("log", "lg");
  assert.deepEqual(lsns("--since", all[3].time), ["write:4", "trim:5"]);
  assert.deepEqual(lsns("--until", all[0].time), ["write:1"]);
});

test("diff: one line per run and a summary; --json is NDJSON runs", () => {
  const text = succeed("diff", "lg", "s1", "current").trimEnd().split("\n");
  assert.match(text[0], /^ +BLOCK +COUNT +OFFSET +LENGTH$/);
  assert.match(text[1], /^ +0 +2 +0 +8192$/);
  assert.equal(text[2], "1 runs, 2 blocks, 8 KiB (8192 bytes) differ");
  assert.equal(text.length, 3);
  assert.deepEqual(succeedNdjson<DiffRun>("diff", "lg", "baseline", "s1"), [
    { block: 0, blockCount: 3, offsetBytes: 0, lengthBytes: 12288 },
  ]);
  assert.deepEqual(succeedNdjson<DiffRun>("diff", "lg", "lsn:4", "current"), [
    { block: 1, blockCount: 1, offsetBytes: 4096, lengthBytes: 4096 },
  ]);
  assert.equal(succeed("diff", "lg", "s1", "s1"), "0 runs, 0 blocks, 0 B (0 bytes) differ\n");
});

test("snapshot delete prints what was deleted, the LUN released and what was freed", async () => {
  const image = Buffer.alloc(diskSizeBytes);
  await change("del", image, [{ offsetBytes: 0, data: block("1") }], "old");
  await change("del", image, [{ offsetBytes: 0, data: block("2") }], "other");
  // With no history window, only the snapshot keeps the first version: deleting it frees it.
  succeed("policy", "set", "del", "--history", "0");
  const lun = succeedJson<SnapshotInfo[]>("snapshot", "list", "del").find((snapshot) => snapshot.name === "old")!.lun;
  const text = succeed("snapshot", "delete", "del", "old");
  assert.match(
    text,
    new RegExp(`^deleted snapshot old of del \\(LSN 1, created \\S+\\): LUN ${lun} released, 1 entries and 4 KiB freed\\n$`),
  );
  assert.deepEqual(
    succeedJson<SnapshotInfo[]>("snapshot", "list", "del").map((snapshot) => snapshot.name),
    ["other"],
  );
  const deleted = succeedJson<DeleteSnapshotResult>("snapshot", "delete", "del", "other");
  assert.deepEqual([deleted.name, deleted.lsn, deleted.entriesFreed], ["other", 2, 0]);
  assert.deepEqual(await readExport("del", 0, blockSizeBytes), block("2"));
  assertFailure(snaplog("snapshot", "delete", "del", "old"), 3, /old/);
});

test("policy set changes only what is given; policy show and disk show report it", () => {
  const basics = ({ historySeconds, autoCompact, compactOnDelete, snapshotEverySeconds }: DiskPolicy) => ({
    historySeconds,
    autoCompact,
    compactOnDelete,
    snapshotEverySeconds,
  });
  const changed = succeedJson<DiskPolicy>("policy", "set", "win", "--history", "2h", "--auto-compact", "off");
  assert.deepEqual(basics(changed), { historySeconds: 7200, autoCompact: false, compactOnDelete: true, snapshotEverySeconds: null });
  assert.deepEqual(basics(succeedJson<DiskPolicy>("policy", "set", "win", "--compact-on-delete", "off")), {
    historySeconds: 7200,
    autoCompact: false,
    compactOnDelete: false,
    snapshotEverySeconds: null,
  });
  const text = succeed("policy", "show", "win");
  assert.match(text, /^history: +2h$/m);
  assert.match(text, /^auto-compact: +off$/m);
  assert.match(text, /^compact-on-delete: +off$/m);
  assert.match(text, /^schedule: +off$/m);
  const shown = succeed("disk", "show", "win");
  assert.match(shown, /^history window: +2h: from LSN 0 \(before the first write\) to LSN 0$/m);
  assert.match(shown, /^policy auto-compact: +off$/m);
  assert.match(shown, /^log dead: +0 B/m);
  const before = succeed("--json", "policy", "show", "win");
  for (const [args, pattern] of [
    [["--history", "abc"], /invalid --history "abc"/],
    [["--history", "-1h"], /invalid --history/],
    [["--auto-compact", "maybe"], /invalid --auto-compact "maybe": expected on or off/],
    [["--compact-on-delete", "1"], /expected on or off/],
    [[], /needs at least one option/],
    [["--snapshot-every", "1h", "--snapshot-cron", "0 * * * *"], /give one schedule/],
    [["--lun-policy", "constant"], /needs --lun N/],
    [["--space-high", "85%"], /needs --space-action/],
    [["--on", "space-high=archive:nowhere"], /vault nowhere does not exist/],
    [["--on", "lunch=compact"], /unknown event "lunch"/],
    [["--snapshot-cron", "61 * * * *"], /snapshot-cron/],
  ] as const) {
    assertFailure(snaplog("policy", "set", "win", ...args), 2, pattern);
  }
  assert.equal(succeed("--json", "policy", "show", "win"), before);
});

test("compact in place frees versions no volume sees; --into-baseline folds the rest into the baseline", async () => {
  // A disk with a 1 s window (see before()): a zero window would free overwritten versions at once.
  const image = Buffer.alloc(diskSizeBytes);
  await change("cmp", image, [
    { offsetBytes: 0, data: block("x") },
    { offsetBytes: 0, data: block("y") },
    { offsetBytes: 0, data: block("z") },
    { offsetBytes: blockSizeBytes, data: block("w") },
  ]);
  // Once the 1 s window has passed, only the newest versions are kept: x and y are dead.
  await new Promise((resolve) => setTimeout(resolve, 1100));
  assert.match(succeed("disk", "show", "cmp"), /^log dead: +8 KiB \(compaction would free it\)$/m);
  const inPlace = succeedJson<CompactResult>("compact", "cmp");
  assert.deepEqual(
    [inPlace.mode, inPlace.entriesFreed, inPlace.bytesFreed, inPlace.bytesMoved, inPlace.lsnFold],
    ["in-place", 2, 8192, 0, 0],
  );
  const again = succeed("compact", "cmp");
  assert.match(
    again,
    /^compacted cmp in place:\nentries freed: +0\nbytes freed: +0 B\nbytes moved: +0 B\nsegments released: +\d+\nduration: +\d+ ms\n$/,
  );

  const folded = succeedJson<CompactResult>("compact", "cmp", "--into-baseline");
  assert.deepEqual([folded.mode, folded.lsnFold, folded.bytesMoved, folded.entriesFreed], ["into-baseline", 4, 8192, 2]);
  const detail = succeedJson<{ hasBaseline: boolean; entryCount: number }>("disk", "show", "cmp");
  assert.deepEqual([detail.hasBaseline, detail.entryCount], [true, 0]);
  assert.deepEqual(await readExport("cmp"), image, "the disk reads the same after the fold");
  assert.deepEqual(await readExport("cmp@baseline"), image, "the baseline now holds it");
  assert.match(succeed("compact", "cmp", "--into-baseline"), /^folded cmp into its baseline:\n[\s\S]*^fold LSN: +4$/m);
});

test("restore --to writes the disk as it was at the point, byte for byte, to a new file", async () => {
  const image = Buffer.alloc(diskSizeBytes);
  await change(
    "rst",
    image,
    [
      { offsetBytes: 0, data: block("p") },
      { offsetBytes: 5 * blockSizeBytes + 100, data: Buffer.from("unaligned bytes") },
    ],
    "s1",
  );
  const atSnapshot = Buffer.from(image);
  await change("rst", image, [{ offsetBytes: 0, data: block("q") }]);

  const result = succeedJson<RestoreResult>("restore", "rst", "--at", "s1", "--to", "at-s1.raw");
  assert.deepEqual(
    [result.mode, result.lsn, result.file?.path, result.file?.sizeBytes],
    ["file", 2, join(directory, "at-s1.raw"), diskSizeBytes],
  );
  assert.deepEqual(readFileSync(join(directory, "at-s1.raw")), atSnapshot);
  const text = succeed("restore", "rst", "--at", "lsn:3", "--to", join(directory, "now.raw"));
  assert.match(text, new RegExp(`^restored rst at LSN 3 \\(\\S+\\) to ${join(directory, "now.raw")}: 1 MiB, `));
  assert.deepEqual(readFileSync(join(directory, "now.raw")), image);
  writeFileSync(join(directory, "taken.raw"), "keep me");
  assertFailure(snaplog("restore", "rst", "--at", "s1", "--to", "taken.raw"), 4, /already exists/);
  assert.equal(readFileSync(join(directory, "taken.raw"), "utf8"), "keep me");
});

test("restore --as-snapshot names a past point; --rollback returns to it and keeps the state before", async () => {
  const image = Buffer.alloc(diskSizeBytes);
  await change("rb", image, [{ offsetBytes: 0, data: block("A") }]);
  await change("rb", image, [{ offsetBytes: 0, data: block("B") }]);
  const named = succeedJson<RestoreResult>("restore", "rb", "--at", "lsn:1", "--as-snapshot", "at-one", "--lun", "77");
  assert.deepEqual([named.mode, named.snapshot?.name, named.snapshot?.lsn, named.snapshot?.lun], ["snapshot", "at-one", 1, 77]);
  const text = succeed("restore", "rb", "--at", "lsn:1", "--rollback", "--name", "before");
  assert.match(text, /^rolled rb back to LSN 1 \(\S+\): 1 blocks restored; the state before is snapshot before \(LUN \d+\)\n$/);
  assert.deepEqual(await readExport("rb", 0, blockSizeBytes), block("A"));
  assert.deepEqual(await readExport("rb@before", 0, blockSizeBytes), block("B"));
  assert.deepEqual(await readExport("rb@at-one", 0, blockSizeBytes), block("A"));
});

test("bad arguments are refused before the store is touched: one line, exit 2, files unchanged", () => {
  const filesBefore = fingerprint(storePath);
  const cases: Array<{ args: string[]; pattern?: RegExp }> = [
    {
      args: ["restore", "lg", "--at", "lsn:1", "--to", "x.raw", "--as-snapshot", "y"],
      pattern: /exactly one of --to FILE, --as-snapshot NAME, --rollback/,
    },
    { args: ["restore", "lg", "--at", "lsn:1", "--rollback", "--as-snapshot", "y"], pattern: /exactly one/ },
    { args: ["restore", "lg", "--at", "lsn:1"], pattern: /exactly one/ },
    { args: ["restore", "lg", "--to", "x.raw"], pattern: /--at/ },
    { args: ["restore", "lg", "--at", "lsn:1", "--as-snapshot", "y", "--name", "z"], pattern: /--name/ },
    { args: ["restore", "lg", "--at", "lsn:1", "--to", "x.raw", "--lun", "3"], pattern: /--lun/ },
    { args: ["restore", "lg", "--at", "12:00", "--as-snapshot", "y"], pattern: /neither lsn:N nor an ISO 8601 time/ },
    { args: ["restore", "lg", "--at", "lsn:1", "--as-snapshot", "a b"] },
    { args: ["compact", "lg", "--snapshot", "s1", "--into-baseline"], pattern: /--snapshot/ },
    { args: ["compact", "lg", "--snapshot", "a/b"] },
    { args: ["log", "lg", "--since", "abc"], pattern: /invalid --since "abc"/ },
    { args: ["log", "lg", "--until", "current"], pattern: /invalid --until/ },
    { args: ["log", "lg", "--snapshot", "a b"] },
    { args: ["diff", "lg", "a b", "current"], pattern: /FROM/ },
    { args: ["diff", "lg", "s1"], pattern: /missing required argument/ },
    { args: ["diff", "lg", "s1", "2026-13-45T00:00:00Z"], pattern: /TO/ },
    { args: ["snapshot", "delete", "lg", "a b"] },
    { args: ["policy", "show", "a/b"] },
  ];
  for (const { args, pattern } of cases) assertFailure(snaplog(...args), 2, pattern);
  assert.equal(fingerprint(storePath), filesBefore);
});

test("what the store refuses: unknown disks and snapshots exit 3; points outside the window exit 3 naming the window", async () => {
  const image = Buffer.alloc(diskSizeBytes);
  await change("win", image, [
    { offsetBytes: 0, data: block("1") },
    { offsetBytes: 0, data: block("2") },
  ]);
  succeed("policy", "set", "win", "--history", "0");
  const cases: Array<{ args: string[]; pattern: RegExp }> = [
    { args: ["log", "nodisk"], pattern: /no disk named "nodisk"/ },
    { args: ["log", "lg", "--snapshot", "nosnap"], pattern: /nosnap/ },
    { args: ["diff", "nodisk", "s1", "current"], pattern: /nodisk/ },
    { args: ["diff", "lg", "nosnap", "current"], pattern: /nosnap/ },
    { args: ["restore", "nodisk", "--at", "lsn:1", "--as-snapshot", "x"], pattern: /nodisk/ },
    { args: ["compact", "nodisk"], pattern: /nodisk/ },
    { args: ["compact", "lg", "--snapshot", "nosnap"], pattern: /nosnap/ },
    { args: ["policy", "show", "nodisk"], pattern: /nodisk/ },
    { args: ["policy", "set", "nodisk", "--history", "1h"], pattern: /nodisk/ },
    { args: ["snapshot", "delete", "nodisk", "s1"], pattern: /nodisk/ },
    { args: ["diff", "win", "lsn:1", "current"], pattern: /LSN 1 is outside the history window of disk win: .*window is 0/ },
    { args: ["restore", "win", "--at", "lsn:1", "--as-snapshot", "x"], pattern: /outside the history window of disk win/ },
    { args: ["restore", "win", "--at", "lsn:1", "--to", "never.raw"], pattern: /outside the history window/ },
    { args: ["diff", "lg", "lsn:999", "current"], pattern: /in the future/ },
  ];
  const stateBefore = succeed("--json", "disk", "list");
  for (const { args, pattern } of cases) assertFailure(snaplog(...args), 3, pattern);
  assert.equal(succeed("--json", "disk", "list"), stateBefore);
  assert.deepEqual(succeedJson<SnapshotInfo[]>("snapshot", "list", "win"), []);
});

test("--help of every history command explains it with examples", () => {
  for (const args of [
    ["log"],
    ["diff"],
    ["restore"],
    ["compact"],
    ["policy", "set"],
    ["policy", "show"],
    ["snapshot", "delete"],
    ["disk", "show"],
  ]) {
    const result = snaplog(...args, "--help");
    assert.equal(result.code, 0, args.join(" "));
    assert.match(result.stdout, /Examples:\n +\$ snaplog /, args.join(" "));
  }
  assert.match(snaplog("log", "--help").stdout, /NDJSON/);
  assert.match(snaplog("diff", "--help").stdout, /NDJSON/);
});
