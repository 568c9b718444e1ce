/**
 * Goal: a full file system (issue 4, "Disk full"): writers get ENOSPC over NBD, nothing already
 * written is harmed, a FLUSH still works, and the disk takes writes again once space is freed
 * (a snapshot deleted, compaction run: whole free segment files go back).
 * Method: a real store on real files under a quota (test/support/quota-medium.ts) that answers
 * ENOSPC like a full file system, served by the real NBD server in-process; writes from our
 * NBD client in 1 MiB requests (so exactly which ones landed is known) and from qemu-io (a
 * real client, which must print the error). A 32 MiB disk with a zero window: each full pass
 * fills one 32 MiB segment file; the quota holds three passes and a little.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { DirectoryMedium } from "../src/engine/medium.js";
import { Store } from "../src/store/store.js";
import { NbdClient, NbdRequestError } from "./support/nbd-client.js";
import { requireTool, startTestServer } from "./support/nbd-server.js";
import { Quota, QuotaMedium } from "./support/quota-medium.js";
import { runTool } from "./support/interop-tools.js";
import { tempDir } from "./support/temp-dir.js";

const MiB = 1024 * 1024;
const SIZE = 32 * MiB;
const NBD_ENOSPC = 28;

test(
  "a full file system: ENOSPC to writers over NBD, nothing written is harmed, writes come back after delete + compact",
  { timeout: 120_000 },
  async () => {
    const directory = tempDir("disk-full");
    const storePath = join(directory, "store");
    await Store.init(storePath);
    const quota = new Quota(Infinity);
    const store = await Store.open(storePath, {
      mode: "server",
      mediumFor: (disk) => new QuotaMedium(new DirectoryMedium(disk), disk, quota),
    });
    after(() => store.close());
    await store.createDisk({ name: "full", sizeBytes: SIZE, historySeconds: 0 });
    const server = await startTestServer(store);
    after(() => server.close());
    const client = await NbdClient.connect({ path: server.socketPath }, "full");
    after(() => client.disconnect());
    const fill = async (byte: number, mibs = Array.from({ length: SIZE / MiB }, (_, index) => index)): Promise<number[]> => {
      const failed: number[] = [];
      for (const mib of mibs) {
        try {
          await client.write(mib * MiB, Buffer.alloc(MiB, byte));
        } catch (error) {
          assert.ok(
            error instanceof NbdRequestError && error.errno === NBD_ENOSPC,
            `a write on a full disk fails with ENOSPC, not ${String(error)}`,
          );
          failed.push(mib);
        }
      }
      await client.flush();
      return failed;
    };
    const expectContent = async (exportName: string, byteOfMiB: (mib: number) => number) => {
      const reader = await NbdClient.connect({ path: server.socketPath }, exportName);
      try {
        for (let mib = 0; mib < SIZE / MiB; mib++) {
          const data = await reader.read(mib * MiB, MiB);
          assert.ok(data.equals(Buffer.alloc(MiB, byteOfMiB(mib))), `${exportName}: MiB ${mib} holds ${byteOfMiB(mib)}`);
        }
      } finally {
        await reader.disconnect();
      }
    };

    assert.deepEqual(await fill(1), []);
    await store.createSnapshot({ disk: "full", name: "s1" });
    assert.deepEqual(await fill(2), []);
    await store.createSnapshot({ disk: "full", name: "s2" });
    // Room for the third pass and 4 MiB more: the fourth runs out.
    quota.limitBytes = quota.usedBytes + SIZE + 4 * MiB;
    assert.deepEqual(await fill(3), []);
    const failed = await fill(4);
    assert.ok(failed.length >= 20, `most of the fourth pass fails with ENOSPC (${failed.length} MiB did)`);
    const landed = (mib: number) => !failed.includes(mib);
    await expectContent("full@s1", () => 1);
    await expectContent("full@s2", () => 2);
    await expectContent("full", (mib) => (landed(mib) ? 4 : 3));

    if (requireTool("qemu-io")) {
      const run = await runTool("qemu-io", ["-f", "raw", "-c", `write -P 5 ${failed[0] * MiB} 1M`, server.uri("full")]);
      assert.match(run.stdout + run.stderr, /No space left on device/, "qemu-io reports ENOSPC");
    }

    // Free space: delete s1, compact. Its versions were the only ones in the first segment file.
    const deleted = await store.deleteSnapshot("full", "s1");
    assert.ok(deleted.bytesFreed >= 16 * MiB, `deleting s1 freed its versions (${deleted.bytesFreed} bytes)`);
    const compacted = await store.compact({ disk: "full" });
    assert.ok(compacted.segmentsReleased >= 1, "a whole free segment file went back to the file system");
    assert.deepEqual(await fill(4, failed), [], "every write that failed succeeds now");
    await expectContent("full", () => 4);
    await expectContent("full@s2", () => 2);
  },
);
