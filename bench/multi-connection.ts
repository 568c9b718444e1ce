/**
 * The jobs with several NBD connections at once (issue 14): fio's nbd engine with `numjobs=N`
 * opens one connection per job, each on its own 1/N of the working set (`offset_increment`),
 * reported as one group. The shared harness runs one connection per job, so this scenario
 * starts the same peers itself, with the same settings as the harness: qemu-nbd on a qcow2
 * image (64 KiB clusters, cache=none, aio=native, --shared so that N clients may connect),
 * nbdkit's file plugin on a raw file, and fio on the raw file with libaio and O_DIRECT.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import path from "node:path";
import { readFile } from "node:fs/promises";
import { runFio } from "./fio.js";
import { JOB_SHAPES, type JobResult } from "./harness.js";

export interface MultiConnectionSettings {
  sizeBytes: number;
  runtimeSeconds: number;
  rampSeconds: number;
  connections: number;
  jobs: readonly string[];
  scratch: string;
  log: (message: string) => void;
}

export interface MultiConnectionResults {
  connections: number;
  results: JobResult[];
}

const CLOCK_TICKS_PER_SECOND = 100;

/** fio's arguments for `job` over `connections` connections (or jobs on a local file). */
function jobArgs(job: string, settings: MultiConnectionSettings): string[] {
  const shape = JOB_SHAPES[job];
  const share = Math.floor(settings.sizeBytes / settings.connections / 1048576) * 1048576;
  const args = [
    `--name=${job}`,
    `--rw=${shape.rw.split(" ")[0]}`,
    `--bs=${shape.bs}`,
    `--iodepth=${shape.iodepth}`,
    `--numjobs=${settings.connections}`,
    "--group_reporting=1",
    `--size=${share}`,
    `--offset_increment=${share}`,
    "--norandommap=1",
    "--randrepeat=0",
    "--time_based=1",
    `--runtime=${settings.runtimeSeconds}`,
    `--ramp_time=${settings.rampSeconds}`,
    "--lat_percentiles=1",
    "--percentile_list=50:99",
    "--unified_rw_reporting=mixed",
    "--output-format=json",
  ];
  if (shape.rw.startsWith("randrw")) args.push("--rwmixread=70");
  return args;
}

/** utime + stime of a process, in clock ticks; 0 when it is gone. */
async function cpuTicks(pid: number | undefined): Promise<number> {
  if (pid === undefined) return 0;
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

interface FioMixed {
  iops: number;
  bw_bytes: number;
  lat_ns?: { percentile?: Record<string, number> };
}

/** One measured job against one target. */
async function measure(
  target: string,
  job: string,
  engineArgs: string[],
  serverPid: number | undefined,
  settings: MultiConnectionSettings,
): Promise<JobResult> {
  const ticksBefore = await cpuTicks(serverPid);
  const started = performance.now();
  try {
    const output = await runFio([...jobArgs(job, settings), ...engineArgs]);
    const elapsedSeconds = (performance.now() - started) / 1000;
    const ticks = (await cpuTicks(serverPid)) - ticksBefore;
    const mixed = (JSON.parse(output.slice(output.indexOf("{"))) as { jobs: { mixed: FioMixed }[] }).jobs[0].mixed;
    const shape = JOB_SHAPES[job];
    return {
      target,
      job,
      phase: "job",
      rw: shape.rw,
      bs: shape.bs,
      iodepth: shape.iodepth,
      runtime_s: settings.runtimeSeconds,
      iops: Math.round(mixed.iops),
      mb_s: Math.round(mixed.bw_bytes / 1e5) / 10,
      lat_p99_us: Math.round((mixed.lat_ns?.percentile?.["99.000000"] ?? 0) / 100) / 10,
      // CPU over the whole fio run, ramp included: the same load throughout.
      ...(serverPid === undefined
        ? {}
        : { server_cpu_pct_of_1_core: Math.round((1000 * ticks) / CLOCK_TICKS_PER_SECOND / elapsedSeconds) / 10 }),
      notes: `${settings.connections} connections`,
    };
  } catch (error) {
    return { target, job, phase: "job", error: (error as Error).message, notes: `${settings.connections} connections` };
  }
}

async function prefill(engineArgs: string[], settings: MultiConnectionSettings): Promise<void> {
  await runFio([
    "--name=prefill",
    "--rw=write",
    "--bs=1m",
    "--iodepth=8",
    `--size=${settings.sizeBytes}`,
    "--output-format=json",
    ...engineArgs,
  ]);
}

async function runJobs(
  target: string,
  engineArgs: string[],
  serverPid: number | undefined,
  settings: MultiConnectionSettings,
): Promise<JobResult[]> {
  settings.log(`  ${target}: prefill, then ${settings.jobs.length} jobs over ${settings.connections} connections`);
  await prefill(engineArgs, settings);
  const results: JobResult[] = [];
  for (const job of settings.jobs) results.push(await measure(target, job, engineArgs, serverPid, settings));
  return results;
}

function nbdArgs(socketPath: string, exportName: string): string[] {
  return ["--ioengine=nbd", `--uri=nbd+unix:///${exportName}?socket=${socketPath}`];
}

async function waitForSocket(socketPath: string, child: ChildProcess): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt += 1) {
    if (existsSync(socketPath)) return;
    if (child.exitCode !== null) throw new Error(`${child.spawnfile} exited ${child.exitCode} before listening`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${child.spawnfile} did not create ${socketPath} in 10 s`);
}

function runQuiet(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.once("error", reject);
    child.once("close", (code) => (code === 0 ? resolve() : reject(new Error(`${command} exited ${code}: ${stderr.trim()}`))));
  });
}

/** Runs `body` against a peer server started with `command`, which is stopped afterwards. */
export async function withPeer<T>(command: string, args: string[], socketPath: string, body: (pid: number) => Promise<T>): Promise<T> {
  const child = spawn(command, args, { stdio: ["ignore", "ignore", "inherit"] });
  try {
    await waitForSocket(socketPath, child);
    return await body(child.pid as number);
  } finally {
    const exited = new Promise((resolve) => child.once("close", resolve));
    child.kill("SIGTERM");
    await exited;
  }
}

/** The peers, each on a fresh image of `sizeBytes` in the scratch dir. */
export async function runMultiConnectionPeers(peers: readonly string[], settings: MultiConnectionSettings): Promise<JobResult[]> {
  const results: JobResult[] = [];
  const dir = settings.scratch;
  for (const peer of peers) {
    const image = path.join(dir, `mc-${peer}.img`);
    const socketPath = path.join(dir, `mc-${peer}.sock`);
    rmSync(image, { force: true });
    rmSync(socketPath, { force: true });
    try {
      if (peer === "qemu-qcow2") {
        await runQuiet("qemu-img", ["create", "-q", "-f", "qcow2", "-o", "cluster_size=65536", image, String(settings.sizeBytes)]);
        const args = [
          "--cache=none",
          "--aio=native",
          "-f",
          "qcow2",
          "--persistent",
          `--shared=${settings.connections + 1}`,
          "--socket",
          socketPath,
          image,
        ];
        for (const result of await withPeer("qemu-nbd", args, socketPath, (pid) => runJobs(peer, nbdArgs(socketPath, ""), pid, settings)))
          results.push(result);
      } else if (peer === "nbdkit-file") {
        await runQuiet("truncate", ["-s", String(settings.sizeBytes), image]);
        const args = ["--foreground", "--unix", socketPath, "file", `file=${image}`];
        for (const result of await withPeer("nbdkit", args, socketPath, (pid) => runJobs(peer, nbdArgs(socketPath, ""), pid, settings)))
          results.push(result);
      } else if (peer === "local-direct") {
        await runQuiet("truncate", ["-s", String(settings.sizeBytes), image]);
        for (const result of await runJobs(peer, ["--ioengine=libaio", "--direct=1", `--filename=${image}`], undefined, settings))
          results.push(result);
      }
    } catch (error) {
      settings.log(`  ${peer}: ${(error as Error).message}`);
      results.push({ target: peer, job: "prefill", phase: "prefill", error: (error as Error).message });
    } finally {
      rmSync(image, { force: true });
    }
  }
  return results;
}

/** snaplog: the jobs over `connections` connections to one export of the running server. */
export function runMultiConnectionSnaplog(
  socketPath: string,
  exportName: string,
  serverPid: number,
  settings: MultiConnectionSettings,
): Promise<JobResult[]> {
  return runJobs("snaplog", nbdArgs(socketPath, exportName), serverPid, settings);
}
