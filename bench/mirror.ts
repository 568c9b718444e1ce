/**
 * The mirror leg (issue 12 item 6): the numbers in BENCHMARKS.md "Mirror". One run, one server,
 * on a scratch store (a real disk: /var/tmp by default): two disks of the same size, one with a
 * mirror file on the same file system; fio with its nbd engine on each, alternated, for
 * 4K random write QD32, 1M sequential write QD8 and 4K random read QD32; then the time a new
 * mirror of a written disk takes to get in sync (resync MB/s). Ratios are mirrored / plain.
 *
 * The RAID-1-like peer: qemu-nbd on two raw files behind qemu's quorum driver (vote-threshold 1,
 * read-pattern fifo: every write to both children, reads from the first), against qemu-nbd on one
 * raw file, both cache=none aio=native as the main bench's qemu peer (this kernel has no md or
 * device-mapper, so no md-raid1). The same jobs, the same alternation.
 *
 *   node dist/bench/mirror.js [--size 1G] [--runtime 15] [--tmpdir /var/tmp]
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { maxOf } from "../src/util/max-of.js";
import { parseSize } from "../src/util/parse.js";
import { fioJobOptions, parseBenchArgs } from "./bench-args.js";
import { fio } from "./fio.js";
import { startServer } from "./server.js";
import { withPeer } from "./multi-connection.js";

const cliPath = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "src", "cli", "main.js");
const usage = `Usage: npm run bench:mirror -- [options]   (or: node dist/bench/mirror.js [options])

The mirror leg: fio over NBD on a mirrored and a plain disk, alternated (4K random write QD32,
1M sequential write QD8, 4K random read QD32), against qemu's quorum driver on two raw files and
one raw file; then a new mirror's resync MB/s.

  --size SIZE     each disk (default 1G)
  --runtime SEC   seconds per fio job (default 15)
  --tmpdir DIR    parent of the scratch store, a real disk (default /var/tmp)
  -h, --help      this text
`;
const values = parseBenchArgs(usage, fioJobOptions({ size: "1G", runtimeSeconds: 15 }));
const sizeBytes = parseSize(values.size);
const runtime = values.runtime;
const scratch = mkdtempSync(path.join(values.tmpdir, "snaplog-bench-mirror-"));
const storePath = path.join(scratch, "store");
const cli = (...args: string[]) => execFileSync(process.execPath, [cliPath, "--store", storePath, ...args], { encoding: "utf8" });

const JOBS = [
  { name: "4K random write QD32", args: ["--rw=randwrite", "--bs=4k", "--iodepth=32"] },
  { name: "1M sequential write QD8", args: ["--rw=write", "--bs=1m", "--iodepth=8"] },
  { name: "4K random read QD32", args: ["--rw=randread", "--bs=4k", "--iodepth=32"] },
];

async function main(): Promise<void> {
  cli("init");
  for (const disk of ["plain", "mirrored"]) cli("disk", "create", disk, "--size", String(sizeBytes));
  cli("policy", "set", "mirrored", "--mirror", path.join(scratch, "mirror.img"));
  const server = await startServer(cliPath, storePath, scratch);
  try {
    // Both disks written whole first: the reads read data, and no write lands in a never-written block only on one side.
    for (const disk of ["plain", "mirrored"])
      await fio(server.unixUri(disk), ["--rw=write", "--bs=1m", "--iodepth=8", `--size=${sizeBytes}`]);
    const lines = [`| job | plain | with a mirror | ratio |`, `| --- | --- | --- | --- |`];
    for (const job of JOBS) {
      const common = [...job.args, `--size=${sizeBytes}`, "--time_based", `--runtime=${runtime}`, "--ramp_time=2"];
      // Alternated, twice each, best of two: the machine is shared.
      const results: Record<string, number[]> = { plain: [], mirrored: [] };
      for (const disk of ["plain", "mirrored", "mirrored", "plain"])
        results[disk].push((await fio(server.unixUri(disk), common)).mbPerSecond);
      const plain = maxOf(results.plain, 0);
      const mirrored = maxOf(results.mirrored, 0);
      const unit = job.name.startsWith("1M")
        ? (value: number) => `${value.toFixed(0)} MB/s`
        : (value: number) => `${((value * 1e6) / 4096).toFixed(0)} IOPS`;
      lines.push(`| ${job.name} | ${unit(plain)} | ${unit(mirrored)} | ${(mirrored / plain).toFixed(2)}× |`);
      process.stdout.write(`${lines[lines.length - 1]}\n`);
    }
    // Resync: a new mirror of the plain disk (written whole) gets in sync.
    const started = process.hrtime.bigint();
    cli("policy", "set", "plain", "--mirror", path.join(scratch, "mirror-2.img"));
    let status: { state: string; bytesCopied: number };
    do {
      await new Promise((resolve) => setTimeout(resolve, 100));
      status = JSON.parse(cli("--json", "mirror", "status", "plain")) as { state: string; bytesCopied: number };
    } while (status.state !== "in-sync");
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    lines.push("");
    lines.push(
      `Resync of a new mirror of a ${sizeBytes / 2 ** 20} MiB disk written whole: ${(status.bytesCopied / 2 ** 20).toFixed(0)} MiB in ${seconds.toFixed(1)} s, ${(status.bytesCopied / 1e6 / seconds).toFixed(0)} MB/s.`,
    );
    await server.stop();
    lines.push("");
    for (const line of await quorumPeer()) lines.push(line);
    process.stdout.write(`\n${lines.join("\n")}\n`);
  } finally {
    await server.kill().catch(() => undefined);
    rmSync(scratch, { recursive: true, force: true });
  }
}

await main();

/** qemu-nbd serving `imageOpts` on a unix socket while `body` runs. */
function withQemuNbd<T>(name: string, imageOpts: string, body: (uri: string) => Promise<T>): Promise<T> {
  const socketPath = path.join(scratch, `${name}.sock`);
  const args = ["--cache=none", "--aio=native", "--persistent", "--shared=2", "--socket", socketPath, "--image-opts", imageOpts];
  return withPeer("qemu-nbd", args, socketPath, () => body(`nbd+unix:///?socket=${socketPath}`));
}

/** The RAID-1-like peer: one raw file against a quorum of two (see the header). */
async function quorumPeer(): Promise<string[]> {
  const raw = (file: string, prefix = "") =>
    `${prefix}driver=raw,${prefix}file.driver=file,${prefix}file.filename=${path.join(scratch, file)}`;
  for (const file of ["single.raw", "leg-a.raw", "leg-b.raw"])
    execFileSync("truncate", ["-s", String(sizeBytes), path.join(scratch, file)]);
  const targets: Record<string, string> = {
    single: raw("single.raw"),
    quorum: `driver=quorum,vote-threshold=1,read-pattern=fifo,${raw("leg-a.raw", "children.0.")},${raw("leg-b.raw", "children.1.")}`,
  };
  const lines = [
    "RAID-1-like peer: qemu-nbd, quorum of two raw files against one raw file (cache=none, aio=native):",
    "",
    "| job | one raw file | quorum of two | ratio |",
    "| --- | --- | --- | --- |",
  ];
  const results: Record<string, Record<string, number[]>> = {};
  for (const job of JOBS) results[job.name] = { single: [], quorum: [] };
  // Each target's server runs once for all its jobs; targets alternate per round.
  for (const target of ["single", "quorum", "quorum", "single"]) {
    await withQemuNbd(target, targets[target], async (uri) => {
      if (results[JOBS[0].name][target].length === 0) await fio(uri, ["--rw=write", "--bs=1m", "--iodepth=8", `--size=${sizeBytes}`]);
      for (const job of JOBS) {
        const common = [...job.args, `--size=${sizeBytes}`, "--time_based", `--runtime=${runtime}`, "--ramp_time=2"];
        results[job.name][target].push((await fio(uri, common)).mbPerSecond);
      }
    });
  }
  for (const job of JOBS) {
    const single = maxOf(results[job.name].single, 0);
    const quorum = maxOf(results[job.name].quorum, 0);
    const unit = job.name.startsWith("1M")
      ? (value: number) => `${value.toFixed(0)} MB/s`
      : (value: number) => `${((value * 1e6) / 4096).toFixed(0)} IOPS`;
    lines.push(`| ${job.name} | ${unit(single)} | ${unit(quorum)} | ${(quorum / single).toFixed(2)}× |`);
    process.stdout.write(`${lines[lines.length - 1]}\n`);
  }
  return lines;
}
