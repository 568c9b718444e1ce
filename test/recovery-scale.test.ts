/**
 * Goal (issue 7, SPEC §2): a disk opens after SIGKILL with its journal at its maximum size made
 * of the smallest records, every durable write readable and every snapshot unchanged. A user
 * found that 140,000 single-block writes followed by a kill took a disk and all its snapshots
 * offline ("Maximum call stack size exceeded" in recovery); no test had opened a journal of more
 * than a few thousand records.
 *
 * The worst case, named: a disk of 512-byte blocks whose journal is within 0.2 % of
 * JOURNAL_CHECKPOINT_BYTES (64 MiB, where it would rotate), every record as small as a client
 * can make it — one one-block write, then a FLUSH: an ENTRIES record of one entry (56 bytes) and
 * an empty SYNCED one (40 bytes) — about 700,000 writes, 1.4 million records, with snapshots
 * cut among them. (Writes without a FLUSH make fewer, larger-per-write records, and mark records
 * come one per sync: neither makes more records per journal byte.)
 *
 * Method. `snaplog disk create`, then the journal filled to 64 MiB − 256 KiB by
 * support/journal-filler.ts (the engine's own record encoder; a client needs ten minutes at
 * queue depth 1 to write that many FLUSHes). The real server opens it, writes on over NBD (one
 * block, FLUSH, 1,500 times, a snapshot through the API half-way), and is killed with SIGKILL
 * with the journal at its maximum less the last records' room (checked: no rotation happened).
 * The server is started again, and every block of the written range is read back over NBD from
 * the current volume and from every snapshot and compared with what the writes put there; the
 * snapshot list must be unchanged and scrub must find nothing.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { JOURNAL_CHECKPOINT_BYTES } from "../src/engine/constants.js";
import { checkRecord } from "../src/engine/log/journal-format.js";
import { fillerBlock, fillJournal } from "./support/journal-filler.js";
import { NbdClient } from "./support/nbd-client.js";
import { killServeChildren, snaplogCli, startServeChild } from "./support/serve-child.js";
import { tempDir } from "./support/temp-dir.js";

after(killServeChildren);

const BLOCK_BYTES = 512;
/** Writes go round-robin over this many blocks (each holds about seven versions). */
const BLOCK_COUNT = 100_000;
const REAL_WRITE_COUNT = 1500;
const READ_CHUNK_BLOCKS = 2048;

/** Where the valid records of a journal file end (the file may carry a zeroed reserve after them). */
function journalValidBytes(file: string): number {
  const bytes = readFileSync(file);
  let offset = 0;
  for (;;) {
    const check = checkRecord(bytes, offset);
    if (check.kind !== "record") return offset;
    offset += check.header.lengthBytes;
  }
}

/** Write i (LSN i + 1) put fillerBlock(i) in block i mod BLOCK_COUNT: what block b holds at the view of LSN `lsnView`. */
function expectedBlock(block: number, lsnView: number): Buffer {
  const lastIndex = lsnView - 1;
  if (lastIndex < block) return Buffer.alloc(BLOCK_BYTES);
  return fillerBlock(block + Math.floor((lastIndex - block) / BLOCK_COUNT) * BLOCK_COUNT, BLOCK_BYTES);
}

async function checkVolume(socketPath: string, exportName: string, lsnView: number): Promise<void> {
  const client = await NbdClient.connect({ path: socketPath }, exportName);
  try {
    for (let first = 0; first < BLOCK_COUNT; first += READ_CHUNK_BLOCKS) {
      const count = Math.min(READ_CHUNK_BLOCKS, BLOCK_COUNT - first);
      const bytes = await client.read(first * BLOCK_BYTES, count * BLOCK_BYTES);
      for (let index = 0; index < count; index++) {
        const block = first + index;
        const got = bytes.subarray(index * BLOCK_BYTES, (index + 1) * BLOCK_BYTES);
        if (!got.equals(expectedBlock(block, lsnView))) {
          assert.fail(
            `${exportName}: block ${block} holds write ${got.readBigUInt64LE(0)}, expected the view at LSN ${lsnView} to hold ${expectedBlock(block, lsnView).readBigUInt64LE(0)}`,
          );
        }
      }
    }
  } finally {
    await client.disconnect();
  }
}

test(
  "a journal at its maximum size of the smallest records (~700,000 one-block writes each followed by FLUSH, 1.4 million records) opens after SIGKILL with every durable write and every snapshot intact",
  { timeout: 600_000 },
  async (t) => {
    const store = tempDir("scale");
    const socketPath = path.join(store, "nbd.sock");
    const diskDirectory = path.join(store, "disks", "d");
    assert.equal((await snaplogCli(store, ["init"])).code, 0);
    const created = await snaplogCli(store, ["disk", "create", "d", "--size", "64M", "--block-size", String(BLOCK_BYTES)]);
    assert.equal(created.code, 0, created.stderr);
    const fill = fillJournal({
      diskDirectory,
      blockSizeBytes: BLOCK_BYTES,
      blockCount: BLOCK_COUNT,
      journalBytesMax: JOURNAL_CHECKPOINT_BYTES - 256 * 1024,
      snapshotEvery: 150_000,
      lunFirst: 100,
      timeFirstMs: Date.now() - 20 * 60 * 1000,
    });
    t.diagnostic(`filled: ${fill.writeCount} writes, ${fill.recordCount} records, ${fill.journalBytes} journal bytes`);
    assert.ok(fill.recordCount > 1_300_000, `the journal holds ${fill.recordCount} records`);

    let server = await startServeChild(store, socketPath);
    const client = await NbdClient.connect({ path: socketPath }, "d");
    const snapshots = fill.snapshots.map(({ name, lsn }) => ({ name, lsn }));
    let index = fill.writeCount;
    for (let count = 0; count < REAL_WRITE_COUNT; count++, index++) {
      await client.write((index % BLOCK_COUNT) * BLOCK_BYTES, fillerBlock(index, BLOCK_BYTES));
      await client.flush();
      if (count === REAL_WRITE_COUNT / 2) {
        const snapshot = await server.api.createSnapshot({ disk: "d", name: "real-1" });
        assert.equal(snapshot.lsn, index + 1);
        snapshots.push({ name: snapshot.name, lsn: snapshot.lsn });
      }
    }
    const journalBytes = journalValidBytes(path.join(diskDirectory, "journal-00000001.log"));
    assert.ok(!existsSync(path.join(diskDirectory, "journal-00000002.log")), "the journal did not rotate: the kill meets it full");
    assert.ok(journalBytes > JOURNAL_CHECKPOINT_BYTES - 128 * 1024, `journal at ${journalBytes} of ${JOURNAL_CHECKPOINT_BYTES} bytes`);
    await server.kill();
    client.destroy();

    const startedMs = Date.now();
    server = await startServeChild(store, socketPath);
    t.diagnostic(`the server started on the full journal in ${Date.now() - startedMs} ms (${journalBytes} bytes)`);
    const listed = await server.api.listSnapshots("d");
    assert.deepEqual(
      listed.map(({ name, lsn }) => ({ name, lsn })),
      snapshots,
      "every snapshot is listed, at its LSN",
    );
    await checkVolume(socketPath, "d", index);
    for (const snapshot of snapshots) await checkVolume(socketPath, `d@${snapshot.name}`, snapshot.lsn);
    // Every entry read back: over a minute for 700,000 of them when the suite loads both cores.
    const scrub = await snaplogCli(store, ["scrub", "d", "--json"], 300_000);
    assert.equal(scrub.code, 0, `scrub found damage: ${scrub.stdout}${scrub.stderr}`);
    await server.stop();
  },
);
