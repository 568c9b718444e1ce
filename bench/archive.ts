/**
 * Archive streams and vaults (issue 10 items 1 and 7): the numbers in BENCHMARKS.md
 * "Archive streams". One run, on a scratch store (a real disk: /var/tmp by default):
 *
 *   1. compression candidates on real data (the first 256 MiB of a tar of /usr), 1 MiB frames
 *      as the stream cuts them: ratio, compress and decompress MB/s, one thread as the writer;
 *   2. export and import MB/s of a disk (default 4 GiB) holding that data cycled, full every
 *      entry and full compacted, against `qemu-img convert` of the same bytes as a raw image
 *      (raw → raw, and raw → qcow2 with zstd compression: the nearest "send a compressed image"
 *      baseline on this machine; there is no zfs here);
 *   3. a hot set (64 MiB) overwritten 10× between two snapshots: the incremental stream's size
 *      compacted against every entry;
 *   4. archive to a Ceph RGW started here (s3://), full compacted: MB/s (skipped without Ceph);
 *   5. a resumed archive: `snaplog archive` killed (SIGKILL) after a third of its parts, run
 *      again: the bytes the second run sends beyond what was missing (target: under one part).
 *
 *   node dist/bench/archive.js [--size 4G] [--tmpdir /var/tmp] [--out FILE]
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { createReadStream, mkdtempSync, promises as fs, readdirSync, rmSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import * as zlib from "node:zlib";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { decompress as zstdDecompress } from "@mongodb-js/zstd";
import { compress as lz4Compress, uncompress as lz4Uncompress } from "lz4-napi";
import { Store } from "../src/store/store.js";
import { parseSize } from "../src/util/parse.js";
import { parseBenchArgs } from "./bench-args.js";
import { startCephRgw, missingCephBinaries } from "../test/support/ceph-rgw.js";
import { CreateBucketCommand } from "@aws-sdk/client-s3";

// The package's wrapper drops the level; its native binding takes one (the stream uses the default, 3).
const zstdBinding = createRequire(import.meta.url)("@mongodb-js/zstd/bindings") as {
  compress(data: Buffer, level: number): Promise<Buffer>;
};
const zstdCompress = (data: Buffer, level: number) => zstdBinding.compress(data, level);

const cliPath = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "src", "cli", "main.js");
const MiB = 1024 * 1024;
const FRAME = MiB;

const usage = `Usage: npm run bench:archive -- [options]   (or: node dist/bench/archive.js [options])

Archive streams and vaults: compression candidates on real data, export and import MB/s against
qemu-img convert, a hot set's incremental stream compacted against every entry, archive to a
Ceph RGW started here (skipped without Ceph), and a resumed archive after SIGKILL.

  --size SIZE     the disk exported (default 4G)
  --tmpdir DIR    parent of the scratch store, a real disk (default /var/tmp)
  --out FILE      also write the report there
  -h, --help      this text
`;
const values = parseBenchArgs(usage, {
  size: { type: "string", default: "4G" },
  tmpdir: { type: "string", default: "/var/tmp" },
  out: { type: "string" },
});
const diskBytes = parseSize(values.size ?? "4G");
const scratch = mkdtempSync(path.join(values.tmpdir ?? "/var/tmp", "snaplog-bench-archive-"));
const lines: string[] = [];
const say = (line: string) => {
  lines.push(line);
  process.stdout.write(`${line}\n`);
};
const seconds = (startNs: bigint) => Number(process.hrtime.bigint() - startNs) / 1e9;
const rate = (bytes: number, time: number) => `${(bytes / MiB / time).toFixed(0)} MB/s`;

function realData(bytes: number): Buffer {
  const tar = spawnSync("bash", ["-c", `tar -cf - /usr/lib /usr/share /usr/bin 2>/dev/null | head -c ${bytes}`], {
    maxBuffer: bytes + MiB,
  });
  return tar.stdout as Buffer;
}

async function compressionCandidates(data: Buffer): Promise<void> {
  const deflate = promisify(zlib.deflateRaw);
  const inflate = promisify(zlib.inflateRaw);
  const candidates: [string, (frame: Buffer) => Promise<Buffer>, (frame: Buffer) => Promise<Buffer>][] = [
    ["zstd 1", (frame) => zstdCompress(frame, 1), (frame) => zstdDecompress(frame)],
    ["zstd 3 (default)", (frame) => zstdCompress(frame, 3), (frame) => zstdDecompress(frame)],
    ["zstd 9", (frame) => zstdCompress(frame, 9), (frame) => zstdDecompress(frame)],
    ["lz4 (lz4-napi)", (frame) => lz4Compress(frame), (frame) => lz4Uncompress(frame)],
    ["deflate 1 (node:zlib)", (frame) => deflate(frame, { level: 1 }), (frame) => inflate(frame)],
    ["deflate 6 (node:zlib)", (frame) => deflate(frame, { level: 6 }), (frame) => inflate(frame)],
  ];
  say(`| codec | ratio | compress | decompress |`);
  say(`| --- | --- | --- | --- |`);
  for (const [name, pack, unpack] of candidates) {
    const packed: Buffer[] = [];
    let start = process.hrtime.bigint();
    for (let at = 0; at < data.length; at += FRAME) packed.push(await pack(data.subarray(at, at + FRAME)));
    const packSeconds = seconds(start);
    start = process.hrtime.bigint();
    for (const frame of packed) await unpack(frame);
    const unpackSeconds = seconds(start);
    const stored = packed.reduce((sum, frame) => sum + frame.length, 0);
    say(`| ${name} | ${(data.length / stored).toFixed(2)} | ${rate(data.length, packSeconds)} | ${rate(data.length, unpackSeconds)} |`);
  }
}

async function fillDisk(store: Store, disk: string, data: Buffer, bytes: number): Promise<void> {
  const volume = store.resolve(disk);
  const chunk = 4 * MiB;
  const writes: Promise<void>[] = [];
  for (let at = 0; at < bytes; at += chunk) {
    const from = at % data.length;
    const piece = Buffer.from(data.subarray(from, from + chunk));
    // The block number in each chunk: cycled data would otherwise repeat whole frames.
    piece.writeUInt32LE(at / chunk, 0);
    writes.push(
      volume.write(at, piece.length === chunk ? piece : Buffer.concat([piece, Buffer.alloc(chunk - piece.length)]), { fua: false }),
    );
    if (writes.length >= 8) await writes.shift();
  }
  await Promise.all(writes);
  await volume.flush();
  volume.release();
}

async function exportToFile(
  store: Store,
  request: Parameters<Store["exportStream"]>[0],
  file: string,
): Promise<{ bytes: number; time: number }> {
  const out = await fs.open(file, "w");
  const start = process.hrtime.bigint();
  const result = await store.exportStream(request, async (chunk) => {
    await out.write(chunk);
  });
  await out.sync();
  await out.close();
  return { bytes: result.bytes, time: seconds(start) };
}

async function importFile(store: Store, disk: string, file: string): Promise<number> {
  const start = process.hrtime.bigint();
  await store.importStream({ disk }, createReadStream(file, { highWaterMark: MiB }));
  return seconds(start);
}

function timed(command: string, args: string[]): number {
  const start = process.hrtime.bigint();
  execFileSync(command, args, { stdio: "ignore" });
  return seconds(start);
}

async function main(): Promise<void> {
  say(`Run: ${new Date().toISOString()}, disk ${diskBytes / MiB} MiB, scratch ${scratch}`);
  const data = realData(256 * MiB);
  say("");
  say(`**Compression on real data** (${(data.length / MiB).toFixed(0)} MiB of a tar of /usr, 1 MiB frames, one at a time):`);
  say("");
  await compressionCandidates(data);

  const sourcePath = path.join(scratch, "source");
  const targetPath = path.join(scratch, "target");
  execFileSync(process.execPath, [cliPath, "-s", sourcePath, "init"]);
  execFileSync(process.execPath, [cliPath, "-s", targetPath, "init"]);
  const source = await Store.open(sourcePath, { mode: "direct" });
  const target = await Store.open(targetPath, { mode: "direct" });
  try {
    await source.createDisk({ name: "big", sizeBytes: diskBytes, historySeconds: 0 });
    let start = process.hrtime.bigint();
    await fillDisk(source, "big", data, diskBytes);
    say("");
    say(`**Export and import of a ${diskBytes / MiB} MiB disk** (that data cycled; filled in ${seconds(start).toFixed(1)} s):`);
    say("");
    await source.createSnapshot({ disk: "big", name: "full" });
    say(`| what | stream bytes | time | disk MB/s |`);
    say(`| --- | --- | --- | --- |`);
    for (const [label, compact] of [
      ["export, every entry (zstd)", false],
      ["export, compacted (zstd)", true],
    ] as const) {
      const file = path.join(scratch, `big-${compact ? "c" : "e"}.slar`);
      const { bytes, time } = await exportToFile(source, { disk: "big", to: "full", compact }, file);
      say(`| ${label} | ${(bytes / MiB).toFixed(0)} MiB | ${time.toFixed(1)} s | ${rate(diskBytes, time)} |`);
      const importSeconds = await importFile(target, `big-${compact ? "c" : "e"}`, file);
      say(`| import of it | | ${importSeconds.toFixed(1)} s | ${rate(diskBytes, importSeconds)} |`);
      await fs.rm(file);
    }
    const raw = path.join(scratch, "big.raw");
    start = process.hrtime.bigint();
    await source.restore({ disk: "big", at: "full", to: raw });
    say(`| restore --to raw (for the baselines) | | ${seconds(start).toFixed(1)} s | ${rate(diskBytes, seconds(start))} |`);
    const copy = path.join(scratch, "copy.raw");
    let time = timed("qemu-img", ["convert", "-f", "raw", "-O", "raw", raw, copy]);
    say(`| qemu-img convert raw → raw | | ${time.toFixed(1)} s | ${rate(diskBytes, time)} |`);
    await fs.rm(copy);
    const qcow = path.join(scratch, "copy.qcow2");
    time = timed("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", "-c", "-o", "compression_type=zstd", raw, qcow]);
    say(
      `| qemu-img convert raw → qcow2, zstd | ${((await fs.stat(qcow)).size / MiB).toFixed(0)} MiB | ${time.toFixed(1)} s | ${rate(diskBytes, time)} |`,
    );
    await fs.rm(qcow);
    await fs.rm(raw);
    await target.deleteDisk("big-c");
    await target.deleteDisk("big-e");
    await source.deleteDisk("big");

    // 3. A hot set overwritten 10×.
    await source.createDisk({ name: "hot", sizeBytes: 1024 * MiB, historySeconds: 3600 });
    await fillDisk(source, "hot", data, 256 * MiB);
    await source.createSnapshot({ disk: "hot", name: "s0" });
    const volume = source.resolve("hot");
    for (let round = 0; round < 10; round++) {
      for (let at = 0; at < 64 * MiB; at += MiB) {
        const piece = Buffer.from(
          data.subarray(((round + 1) * 64 * MiB + at) % data.length, (((round + 1) * 64 * MiB + at) % data.length) + MiB),
        );
        piece.writeUInt32LE(round, 0);
        await volume.write(at, piece, { fua: false });
      }
    }
    volume.release();
    await source.createSnapshot({ disk: "hot", name: "s1" });
    const sizes: Record<string, number> = {};
    for (const compact of [false, true]) {
      const file = path.join(scratch, "hot.slar");
      sizes[String(compact)] = (await exportToFile(source, { disk: "hot", from: "s0", to: "s1", compact }, file)).bytes;
      await fs.rm(file);
    }
    say("");
    say(
      `**A hot set overwritten 10×** (64 MiB, between two snapshots): the incremental stream is ${(sizes.false / MiB).toFixed(0)} MiB with every entry, ${(sizes.true / MiB).toFixed(0)} MiB compacted (${(sizes.false / sizes.true).toFixed(1)}× smaller).`,
    );
  } finally {
    await source.close();
    await target.close();
  }

  // 4. Archive to RGW.
  say("");
  if (missingCephBinaries().length > 0) say("**Archive to Ceph RGW**: skipped (Ceph not installed).");
  else {
    const rgw = await startCephRgw({ memstoreBytes: 3 * 1024 * MiB });
    try {
      await rgw.client.send(new CreateBucketCommand({ Bucket: "bench" }));
      const env = { ...process.env, AWS_ACCESS_KEY_ID: rgw.accessKeyId, AWS_SECRET_ACCESS_KEY: rgw.secretAccessKey };
      const cli = (...args: string[]) => execFileSync(process.execPath, [cliPath, "-s", sourcePath, ...args], { env, encoding: "utf8" });
      cli("vault", "add", "rgw", `s3://bench/snaplog?endpoint=${rgw.endpoint}&region=${rgw.region}`);
      cli("snapshot", "create", "hot", "--name", "a1");
      const start = process.hrtime.bigint();
      const result = JSON.parse(cli("--json", "archive", "hot", "--vault", "rgw", "--snapshot", "a1")) as { bytes: number };
      const time = seconds(start);
      say(
        `**Archive to Ceph RGW** (s3://, memstore OSD on this machine, 64 MiB parts as multipart uploads): a full compacted stream of 1 GiB disk (320 MiB written) — ${(result.bytes / MiB).toFixed(0)} MiB in ${time.toFixed(1)} s, ${rate(result.bytes, time)} of stream.`,
      );
    } finally {
      await rgw.stop();
    }
  }

  // 5. A resumed archive.
  const vaultPath = path.join(scratch, "vault");
  const cli = (...args: string[]) => execFileSync(process.execPath, [cliPath, "-s", sourcePath, ...args], { encoding: "utf8" });
  cli("vault", "add", "dir", `file://${vaultPath}`);
  cli("snapshot", "create", "hot", "--name", "r1");
  const partBytes = 8 * MiB;
  const child = spawn(
    process.execPath,
    [cliPath, "-s", sourcePath, "archive", "hot", "--vault", "dir", "--snapshot", "r1", "--compact", "off", "--part-size", "8M"],
    { stdio: "ignore" },
  );
  const partsBefore = await new Promise<number>((resolve) => {
    const timer = setInterval(() => {
      const parts = countParts(vaultPath);
      if (parts >= 12) {
        clearInterval(timer);
        child.kill("SIGKILL");
        resolve(parts);
      }
    }, 20);
  });
  await new Promise((resolve) => child.on("exit", resolve));
  const result = JSON.parse(
    cli("--json", "archive", "hot", "--vault", "dir", "--snapshot", "r1", "--compact", "off", "--part-size", "8M"),
  ) as { bytes: number; bytesSent: number; partsResumed: number; parts: number };
  const missing = result.bytes - result.partsResumed * partBytes;
  say("");
  say(
    `**A resumed archive** (8 MiB parts, every entry, killed with SIGKILL once ${partsBefore} parts were in the vault): the second run found ${result.partsResumed} of ${result.parts} parts there, checked, and sent ${(result.bytesSent / MiB).toFixed(1)} MiB where ${(missing / MiB).toFixed(1)} MiB were missing: ${((result.bytesSent - missing) / MiB).toFixed(1)} MiB sent again (one part is ${partBytes / MiB} MiB).`,
  );
  if (values.out !== undefined) await fs.writeFile(values.out, `${lines.join("\n")}\n`);
  rmSync(scratch, { recursive: true, force: true });
}

function countParts(directory: string): number {
  let count = 0;
  const pending = [directory];
  for (let at = pending.pop(); at !== undefined; at = pending.pop()) {
    let entries;
    try {
      entries = readdirSync(at, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const entry of entries) {
      if (entry.isDirectory()) pending.push(path.join(at, entry.name));
      else if (entry.name.startsWith("part-")) count++;
    }
  }
  return count;
}

await main();
