/**
 * Goal: large WRITE payloads are assembled into reused buffers (payload-pool.ts) and segment
 * files take large runs direct, without a byte going astray: a buffer is reused only once its
 * request completed. Method: the pool's own rules, then fio's nbd engine writing 1 MiB blocks at
 * QD 16 over four connections to a real `snaplog serve`, with crc32c verification of every block
 * read back: a payload handed back while the engine still needed it would be overwritten by a
 * later request's bytes and fail the verify.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import * as path from "node:path";
import { givePayload, POOLED_PAYLOAD_BYTES_MIN, takePayload } from "../src/util/payload-pool.js";
import { isPageAligned } from "../src/util/aligned-memory.js";
import { requireTool } from "./support/nbd-server.js";
import { runOk } from "./support/interop-tools.js";
import { killServeChildren, snaplogCli, startServeChild } from "./support/serve-child.js";
import { tempDir } from "./support/temp-dir.js";

after(killServeChildren);
const directory = tempDir("payload-pool");

/** Whether two views start at the same byte of the same memory. */
function sameMemory(a: Buffer, b: Buffer): boolean {
  return a.buffer === b.buffer && a.byteOffset === b.byteOffset;
}

test("the pool: large payloads are page-aligned and reuse a buffer once given back; small ones are plain allocations", () => {
  const first = takePayload(1024 * 1024);
  assert.equal(first.length, 1024 * 1024);
  assert.ok(isPageAligned(first), "a large payload can go to O_DIRECT as it is");
  givePayload(first);
  const second = takePayload(1024 * 1024);
  assert.ok(sameMemory(second, first), "a given-back buffer is taken again");
  const third = takePayload(1024 * 1024);
  assert.ok(!sameMemory(third, second), "a buffer in use is never handed out twice");
  // A size between two classes takes the larger class's buffer, cut to length.
  givePayload(second);
  const odd = takePayload(600 * 1024);
  assert.equal(odd.length, 600 * 1024);
  assert.ok(sameMemory(odd, second), "600 KiB is served from the 1 MiB class");
  givePayload(odd);
  assert.ok(sameMemory(takePayload(1000 * 1024), odd), "and given back there whole");
  givePayload(Buffer.alloc(1024 * 1024));
  assert.ok(!sameMemory(takePayload(1024 * 1024), third), "a buffer the pool did not hand out is not taken in");
  const small = takePayload(POOLED_PAYLOAD_BYTES_MIN);
  assert.ok(!isPageAligned(small), "small payloads are plain allocations");
  givePayload(small);
  assert.ok(!sameMemory(takePayload(POOLED_PAYLOAD_BYTES_MIN), small), "and are not pooled");
});

test(
  "fio writes 1 MiB blocks over four connections and verifies every one (crc32c) against snaplog serve",
  { skip: !requireTool("fio", "fio") },
  async () => {
    const storePath = path.join(directory, "store");
    assert.equal((await snaplogCli(storePath, ["init"])).code, 0);
    assert.equal((await snaplogCli(storePath, ["disk", "create", "d", "--size", "256MiB"])).code, 0);
    const server = await startServeChild(storePath, path.join(directory, "nbd.sock"));
    try {
      const job = [
        "--name=verify",
        "--ioengine=nbd",
        `--uri=${server.unixUri("d")}`,
        "--rw=randwrite",
        "--bs=1m",
        "--iodepth=16",
        "--numjobs=4",
        "--size=64m",
        "--offset_increment=64m",
        "--verify=crc32c",
        "--verify_fatal=1",
        "--do_verify=1",
        "--loops=2",
      ];
      const run = await runOk("fio", job);
      assert.match(run.stdout, /err= 0/);
      assert.doesNotMatch(run.stdout + run.stderr, /verify: bad|verify failed/);
    } finally {
      await server.stop();
    }
  },
);
