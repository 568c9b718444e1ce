/**
 * Goal: CLI input that used to slip through is refused with one line and exit 2 before
 * anything runs (SPEC §2 "Bad input gets a clear answer and changes nothing"): snapshot names
 * that `DISK@NAME` and `--at NAME` would read as points in time, times without a zone, and
 * background compaction timings that are not whole milliseconds in range. And
 * `compact --into-baseline` names the blocks a fold met damaged, in text and in --json.
 * Method: the real binary (dist/src/cli/main.js) on stores made with the Store library.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import type { CompactResult } from "../src/store/operations/index.js";
import { assertFailure, assertSuccess, cliForStore, fingerprint, runCli } from "./support/cli.js";
import { firstSegmentPath, flipByte, storeWithDisk } from "./support/store-fixtures.js";
import { tempDir } from "./support/temp-dir.js";

const blockSizeBytes = 4096;

test("snapshot names that would read as points in time are refused, whichever command makes the snapshot", async () => {
  const storePath = await storeWithDisk(join(tempDir("cli-names"), "store"), { name: "vm1", sizeBytes: 1 << 20 }, [
    { offsetBytes: 0, data: Buffer.alloc(blockSizeBytes, 1) },
  ]);
  const snaplog = cliForStore(storePath);
  const before = fingerprint(storePath);
  for (const name of ["2026-11-25", "20261125", "1"]) {
    assertFailure(
      snaplog("snapshot", "create", "vm1", "--name", name),
      2,
      new RegExp(`invalid snapshot name "${name}": DISK@${name} and --at ${name} would read it as a`),
    );
    assertFailure(snaplog("restore", "vm1", "--at", "lsn:1", "--as-snapshot", name), 2, /would read it as a/);
    assertFailure(snaplog("restore", "vm1", "--at", "lsn:1", "--rollback", "--name", name), 2, /would read it as a/);
  }
  assertFailure(snaplog("snapshot", "create", "vm1", "--name", "baseline"), 2, /reserved/);
  assertFailure(snaplog("log", "vm1", "--since", "2026-11-25T10:00:00"), 2, /a time needs its zone/);
  assertFailure(
    snaplog("diff", "vm1", "2026-11-25 10:00:00Z", "current"),
    2,
    /^snaplog: invalid FROM "2026-11-25 10:00:00Z": write it as 2026-11-25T10:00:00Z/,
  );
  assert.equal(fingerprint(storePath), before, "nothing changed");
  // A name with a letter is fine, and addresses its snapshot.
  assertSuccess(snaplog("snapshot", "create", "vm1", "--name", "2026-11-25-nightly"));
  assertSuccess(snaplog("diff", "vm1", "2026-11-25-nightly", "current"));
});

test("SNAPLOG_COMPACT_INTERVAL_MS and SNAPLOG_COMPACT_IDLE_MS: whole milliseconds in range, else serve refuses to start", () => {
  const storePath = join(tempDir("cli-serve-env"), "no-store");
  const serve = (env: Record<string, string>) => runCli(["--store", storePath, "serve", "--nbd", "127.0.0.1:0"], { env });
  for (const text of ["0", "99", "0x10", "1e3", "-5", "1.5", "2147483648"]) {
    assertFailure(
      serve({ SNAPLOG_COMPACT_INTERVAL_MS: text }),
      2,
      new RegExp(`invalid SNAPLOG_COMPACT_INTERVAL_MS "${text.replace(".", "\\.")}"`),
    );
  }
  for (const text of ["1e3", "-1", "ten"]) assertFailure(serve({ SNAPLOG_COMPACT_IDLE_MS: text }), 2, /SNAPLOG_COMPACT_IDLE_MS/);
  // Good values get as far as opening the store (there is none here: exit 6).
  assertFailure(serve({ SNAPLOG_COMPACT_INTERVAL_MS: "100", SNAPLOG_COMPACT_IDLE_MS: "0" }), 6);
});

test("compact --into-baseline names the blocks whose data failed its checksum, in text and in --json", async () => {
  // Block 7 is written first, so its data is at offset 0 of the first segment file; with no
  // history window the fold takes every block.
  const writes = [7, 1, 2].map((block) => ({ offsetBytes: block * blockSizeBytes, data: Buffer.alloc(blockSizeBytes, block + 1) }));
  const text = await storeWithDisk(join(tempDir("cli-fold-text"), "store"), { name: "vm1", sizeBytes: 1 << 20, historySeconds: 0 }, writes);
  flipByte(firstSegmentPath(text, "vm1"), 10);
  const human = cliForStore(text)("compact", "vm1", "--into-baseline");
  assertSuccess(human);
  assert.match(human.stdout, /^folded vm1 into its baseline:$/m);
  assert.match(
    human.stdout,
    /^damaged blocks: +7 \(data failed its checksum: left in the log, the baseline answers EIO there; see snaplog scrub\)$/m,
  );

  const json = await storeWithDisk(join(tempDir("cli-fold-json"), "store"), { name: "vm1", sizeBytes: 1 << 20, historySeconds: 0 }, writes);
  flipByte(firstSegmentPath(json, "vm1"), 10);
  const machine = cliForStore(json)("--json", "compact", "vm1", "--into-baseline");
  assertSuccess(machine);
  assert.deepEqual((JSON.parse(machine.stdout) as CompactResult).corruptBlocks, [7]);

  // A sound fold lists none.
  const sound = await storeWithDisk(
    join(tempDir("cli-fold-sound"), "store"),
    { name: "vm1", sizeBytes: 1 << 20, historySeconds: 0 },
    writes,
  );
  const clean = cliForStore(sound)("compact", "vm1", "--into-baseline");
  assertSuccess(clean);
  assert.doesNotMatch(clean.stdout, /damaged/);
});
