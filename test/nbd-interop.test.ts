/**
 * Goal: real NBD clients (nbdinfo, qemu-io, nbdsh/libnbd) interoperate with NbdServer.
 * Method: start the server in-process on an ephemeral TCP port and a temp unix socket over
 * in-memory volumes, run each client as a child process (asynchronously: the server shares this
 * event loop), and check both what the client reports and what the volume holds afterwards.
 * A missing tool skips its tests loudly, and fails them when CI is set.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { KiB, MiB, nbdsh, qemuIo } from "./support/interop-tools.js";
import { MemoryResolver, MemoryVolume } from "./support/memory-volume.js";
import { requireTool, startTestServer, type TestServer } from "./support/nbd-server.js";
import { STATE_HOLE, STATE_ZERO } from "../src/nbd/protocol.js";
import { allocationBits } from "../src/nbd/transmission.js";

const run = promisify(execFile);
const DISK_BYTES = 4 * MiB;

const hasNbdinfo = requireTool("nbdinfo");
const hasQemuIo = requireTool("qemu-io");
const hasNbdsh = requireTool("nbdsh");

let server: TestServer;
let disk: MemoryVolume;
let snapshot: MemoryVolume;
let scratch: MemoryVolume;
/** What `disk` should hold: every test that writes updates it too. */
const model = Buffer.alloc(DISK_BYTES);

before(async () => {
  disk = new MemoryVolume({ name: "vm1", sizeBytes: DISK_BYTES, description: "disk vm1, LUN 1" });
  snapshot = new MemoryVolume({ name: "vm1@daily", sizeBytes: DISK_BYTES, readOnly: true, description: "disk vm1, snapshot daily, LUN 3" });
  snapshot.load(0, Buffer.alloc(64 * KiB, 0x5a));
  scratch = new MemoryVolume({ name: "scratch", sizeBytes: MiB + 512, blockSizeBytes: 512, description: "scratch, LUN 7" });
  const resolver = new MemoryResolver().add(disk).add(snapshot).add(scratch);
  server = await startTestServer(resolver);
});

after(async () => {
  await server.close();
});

test("nbdinfo --list shows every export with its description", { skip: !hasNbdinfo }, async () => {
  const { stdout } = await run("nbdinfo", ["--list", "--json", server.uri("")]);
  const listing = JSON.parse(stdout) as { exports: { "export-name": string; description: string }[] };
  const seen = new Map<string, string>(listing.exports.map((item) => [item["export-name"], item.description]));
  assert.equal(seen.get("vm1"), "disk vm1, LUN 1");
  assert.equal(seen.get("vm1@daily"), "disk vm1, snapshot daily, LUN 3");
  assert.equal(seen.get("scratch"), "scratch, LUN 7");
  assert.equal(seen.size, 3);
});

test("nbdinfo --json reports size, block sizes and flags", { skip: !hasNbdinfo }, async () => {
  const { stdout } = await run("nbdinfo", ["--json", server.uri("scratch")]);
  const item = JSON.parse(stdout).exports[0];
  assert.equal(item["export-size"], MiB + 512);
  assert.equal(item.block_size_minimum, 1);
  assert.equal(item.block_size_preferred, 512);
  assert.equal(item.block_size_maximum, 32 * MiB);
  assert.equal(item.is_read_only, false);
  assert.equal(item.can_multi_conn, true);
  assert.equal(item.can_fua, true);
  assert.equal(item.can_trim, true);
  assert.equal(item.can_zero, true);
  assert.equal(item.can_fast_zero, true);
  const { stdout: snapshotOut } = await run("nbdinfo", ["--json", server.unixUri("vm1@daily")]);
  assert.equal(JSON.parse(snapshotOut).exports[0].is_read_only, true);
});

test("qemu-io pattern write and read back, aligned", { skip: !hasQemuIo }, async () => {
  await qemuIo(server.uri("vm1"), ["write -P 0xab 0 64k", "read -P 0xab 0 64k"]);
  model.fill(0xab, 0, 64 * KiB);
  assert.ok(disk.data.equals(model));
});

test("qemu-io unaligned writes and reads", { skip: !hasQemuIo }, async () => {
  const cases: Array<[number, number, number]> = [
    [513, 1000, 0x11],
    [4095, 2, 0x22],
    [65537, 131071, 0x33],
    [DISK_BYTES - 3, 3, 0x44],
  ];
  const commands = cases.flatMap(([offset, length, pattern]) => [
    `write -P ${pattern} ${offset} ${length}`,
    `read -P ${pattern} ${offset} ${length}`,
  ]);
  await qemuIo(server.unixUri("vm1"), commands);
  for (const [offset, length, pattern] of cases) model.fill(pattern, offset, offset + length);
  assert.ok(disk.data.equals(model));
});

test("qemu-io write -z and discard, and nbdinfo --map reports them honestly", { skip: !hasQemuIo || !hasNbdinfo }, async () => {
  await qemuIo(server.uri("vm1"), [
    "write -P 0x77 1M 320k",
    "write -z 1M 64k",
    "write -z -u 1088k 64k",
    "discard 1152k 64k",
    "read -P 0 1M 192k",
    "read -P 0x77 1216k 128k",
  ]);
  model.fill(0x77, MiB, MiB + 320 * KiB);
  // A discarded range may read as anything per NBD; ours reads zeros.
  model.fill(0, MiB, MiB + 192 * KiB);
  assert.ok(disk.data.equals(model));

  const { stdout } = await run("nbdinfo", ["--map", "--json", server.uri("vm1")]);
  const reported = (JSON.parse(stdout) as { offset: number; length: number; type: number }[]).map((extent) => [
    extent.offset,
    extent.length,
    extent.type,
  ]);
  const expected: Array<[number, number, number]> = [];
  let offsetBytes = 0;
  for (const extent of await disk.blockStatus(0, DISK_BYTES)) {
    expected.push([offsetBytes, extent.lengthBytes, allocationBits(extent)]);
    offsetBytes += extent.lengthBytes;
  }
  assert.deepEqual(reported, expected);
  const at = (offset: number): number =>
    (reported.find(([start, length]: number[]) => offset >= start && offset < start + length) ?? [0, 0, -1])[2];
  assert.equal(at(0), 0, "written data is data");
  assert.equal(at(MiB), STATE_ZERO, "write -z allocates zeros");
  assert.equal(at(MiB + 64 * KiB), STATE_HOLE | STATE_ZERO, "write -z -u punches a hole");
  assert.equal(at(MiB + 128 * KiB), STATE_HOLE | STATE_ZERO, "discard punches a hole");
  assert.equal(at(MiB + 192 * KiB), 0, "the rest stays data");
  assert.equal(at(3 * MiB), STATE_HOLE | STATE_ZERO, "never written is a hole");
});

test("read-only export serves reads and refuses writes with EPERM", { skip: !hasQemuIo || !hasNbdsh }, async () => {
  await qemuIo(server.uri("vm1@daily"), ["read -P 0x5a 0 64k"], { readOnly: true });
  const result = await nbdsh([
    `h.set_strict_mode(0)`,
    `h.connect_uri(${JSON.stringify(server.uri("vm1@daily"))})`,
    `errors = []`,
    `for op in (lambda: h.pwrite(b"x" * 512, 0), lambda: h.zero(4096, 0), lambda: h.trim(4096, 0)):`,
    `    try:`,
    `        op()`,
    `        errors.append(None)`,
    `    except nbd.Error as e:`,
    `        errors.append(e.errno)`,
    `print(json.dumps({"readOnly": h.is_read_only(), "errors": errors}))`,
  ]);
  assert.deepEqual(result, { readOnly: true, errors: ["EPERM", "EPERM", "EPERM"] });
  assert.ok(snapshot.data.subarray(0, 64 * KiB).equals(Buffer.alloc(64 * KiB, 0x5a)));
});

test("nbdsh: FUA writes reach the volume as FUA, flush reaches the volume", { skip: !hasNbdsh }, async () => {
  const fuaBefore = scratch.fuaCount;
  const flushBefore = scratch.flushCount;
  const result = await nbdsh([
    `h.connect_uri(${JSON.stringify(server.uri("scratch"))})`,
    `h.pwrite(b"\\x42" * 4096, 8192, nbd.CMD_FLAG_FUA)`,
    `h.zero(4096, 16384, nbd.CMD_FLAG_FUA | nbd.CMD_FLAG_NO_HOLE)`,
    `h.trim(4096, 20480, nbd.CMD_FLAG_FUA)`,
    `h.zero(4096, 24576, nbd.CMD_FLAG_FAST_ZERO)`,
    `h.flush()`,
    `print(json.dumps({"read": h.pread(4096, 8192) == b"\\x42" * 4096}))`,
  ]);
  assert.deepEqual(result, { read: true });
  assert.equal(scratch.fuaCount - fuaBefore, 3);
  assert.equal(scratch.flushCount - flushBefore, 1);
});

test("nbdsh: block status, with and without REQ_ONE", { skip: !hasNbdsh }, async () => {
  const volume = new MemoryVolume({ name: "status", sizeBytes: MiB, blockSizeBytes: 4096 });
  await volume.write(0, Buffer.alloc(8192, 1), { fua: false });
  await volume.writeZeroes(8192, 4096, { fua: false, noHole: true });
  (server.server.resolver as MemoryResolver).add(volume);
  const result = await nbdsh([
    `h.add_meta_context("base:allocation")`,
    `h.connect_uri(${JSON.stringify(server.uri("status"))})`,
    `out = {}`,
    `def collect(key):`,
    `    def cb(context, offset, entries, err):`,
    `        out.setdefault(key, []).extend(entries)`,
    `    return cb`,
    `h.block_status(${MiB}, 0, collect("all"))`,
    `h.block_status(${MiB}, 0, collect("one"), nbd.CMD_FLAG_REQ_ONE)`,
    `h.block_status(1000, 8000, collect("middle"))`,
    `print(json.dumps(out))`,
  ]);
  const holeZero = STATE_HOLE | STATE_ZERO;
  assert.deepEqual(result.all, [8192, 0, 4096, STATE_ZERO, MiB - 12288, holeZero]);
  assert.deepEqual(result.one, [8192, 0]);
  assert.deepEqual(result.middle, [192, 0, 808, STATE_ZERO]);
});

/** The same checks over structured and simple replies. */
for (const structured of [true, false]) {
  const mode = structured ? "structured" : "simple";
  test(`nbdsh (${mode} replies): reads, reads past the end EINVAL, writes past the end ENOSPC`, { skip: !hasNbdsh }, async () => {
    const size = MiB + 512;
    const result = await nbdsh([
      `h.set_strict_mode(0)`,
      `h.set_request_structured_replies(${structured ? "True" : "False"})`,
      `h.connect_uri(${JSON.stringify(server.uri("scratch"))})`,
      `def errno_of(op):`,
      `    try:`,
      `        op()`,
      `        return None`,
      `    except nbd.Error as e:`,
      `        return e.errno`,
      `h.pwrite(b"\\x99" * 1000, 100000)`,
      `out = {"structured": h.get_structured_replies_negotiated(), "read": h.pread(1000, 100000) == b"\\x99" * 1000}`,
      `out["tail"] = h.pread(512, ${size - 512}) == bytes(512)`,
      `out["readPastEnd"] = errno_of(lambda: h.pread(1024, ${size - 512}))`,
      `out["readFarPastEnd"] = errno_of(lambda: h.pread(512, 1 << 40))`,
      `out["writePastEnd"] = errno_of(lambda: h.pwrite(b"y" * 1024, ${size - 512}))`,
      `out["zeroPastEnd"] = errno_of(lambda: h.zero(1024, ${size - 512}))`,
      `out["trimPastEnd"] = errno_of(lambda: h.trim(1024, ${size - 512}))`,
      `out["readTooBig"] = errno_of(lambda: h.pread(${32 * MiB + 1}, 0))`,
      `out["after"] = h.pread(1000, 100000) == b"\\x99" * 1000`,
      `print(json.dumps(out))`,
    ]);
    assert.deepEqual(result, {
      structured,
      read: true,
      tail: true,
      readPastEnd: "EINVAL",
      readFarPastEnd: "EINVAL",
      writePastEnd: "ENOSPC",
      zeroPastEnd: "ENOSPC",
      trimPastEnd: "ENOSPC",
      readTooBig: "EINVAL",
      after: true,
    });
    assert.ok(scratch.data.subarray(size - 512).equals(Buffer.alloc(512)), "nothing written past the end");
  });
}
