/**
 * Runs the shared NBD benchmark harness (nbd-bench.sh: fio with its nbd ioengine) and parses
 * its stdout: one JSON object per job, then summary lines starting with "#".
 * The harness runs in its own process group so that stop() can end it together with its fio
 * and peer servers; its stderr (progress) goes to ours.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";

/** One job as nbd-bench.sh reports it (fields of its jq program). */
export interface JobResult {
  target: string;
  job: string;
  phase: "prefill" | "job";
  rw?: string;
  bs?: string;
  iodepth?: number;
  runtime_s?: number;
  iops?: number;
  mb_s?: number;
  lat_mean_us?: number;
  lat_p50_us?: number;
  lat_p99_us?: number;
  lat_p999_us?: number;
  fio_cpu_pct_of_1_core?: number;
  host_cpu_busy_pct_all_cores?: number;
  idle_host_cpu_busy_pct_before?: number | null;
  server_cpu_pct_of_1_core?: number;
  foreign_cpu_pct_all_cores?: number;
  disk_read_mb?: number;
  disk_write_mb?: number;
  disk_util_pct?: number;
  fio_errors?: number;
  attempt?: number;
  notes?: string;
  /** Set when fio failed. */
  error?: string;
}

/** The harness job names (nbd-bench.sh --help), in its order. */
export const ALL_JOBS = [
  "randwrite-4k-qd32",
  "randread-4k-qd32",
  "randrw70-4k-qd32",
  "seqwrite-1m-qd8",
  "seqread-1m-qd8",
  "randwrite-4k-qd1",
] as const;

export const JOB_SHAPES: Record<string, { description: string; rw: string; bs: string; iodepth: number }> = {
  "randwrite-4k-qd32": { description: "4 KiB random write", rw: "randwrite", bs: "4k", iodepth: 32 },
  "randread-4k-qd32": { description: "4 KiB random read", rw: "randread", bs: "4k", iodepth: 32 },
  "randrw70-4k-qd32": { description: "4 KiB random 70% read / 30% write", rw: "randrw (rwmixread=70)", bs: "4k", iodepth: 32 },
  "seqwrite-1m-qd8": { description: "1 MiB sequential write", rw: "write", bs: "1m", iodepth: 8 },
  "seqread-1m-qd8": { description: "1 MiB sequential read", rw: "read", bs: "1m", iodepth: 8 },
  "randwrite-4k-qd1": { description: "4 KiB random write, latency", rw: "randwrite", bs: "4k", iodepth: 1 },
};

/** Peer names of nbd-bench.sh --peers that the report compares against. */
export const PEER_NAMES = ["qemu-qcow2", "nbdkit-file", "local-direct"] as const;

export function locateHarness(repoRoot: string): string | undefined {
  const fromEnv = process.env.SNAPLOG_BENCH_HARNESS;
  if (fromEnv !== undefined && fromEnv !== "") {
    if (!existsSync(fromEnv)) throw new Error(`SNAPLOG_BENCH_HARNESS=${fromEnv}: no such file`);
    return path.resolve(fromEnv);
  }
  const sibling = path.resolve(repoRoot, "..", "shared", "bench", "nbd-bench.sh");
  return existsSync(sibling) ? sibling : undefined;
}

/** Settings passed to every harness run. */
export interface HarnessSettings {
  harness: string;
  size: string;
  runtimeSeconds: number;
  rampSeconds: number;
  quietWaitSeconds: number;
  retries: number;
  maxForeignPct: number;
  tmpDir: string;
}

export interface HarnessRun {
  /** URI mode: the export URI; peers mode: undefined. */
  uri?: string;
  label?: string;
  serverPid?: number;
  peers?: readonly string[];
  jobs: readonly string[];
  prefill: boolean;
}

export class Harness {
  private child: ChildProcess | undefined;

  constructor(readonly settings: HarnessSettings) {}

  args(run: HarnessRun): string[] {
    const s = this.settings;
    const args = [
      "--size",
      s.size,
      "--runtime",
      String(s.runtimeSeconds),
      "--ramp",
      String(s.rampSeconds),
      "--quiet-wait",
      String(s.quietWaitSeconds),
      "--retries",
      String(s.retries),
      "--max-foreign",
      String(s.maxForeignPct),
      "--tmpdir",
      s.tmpDir,
      "--jobs",
      run.jobs.join(","),
    ];
    if (!run.prefill) args.push("--no-prefill");
    if (run.peers !== undefined) {
      args.push("--peers", "--only-peers", run.peers.join(","));
    } else {
      if (run.uri === undefined) throw new Error("harness run needs a URI or peers");
      if (run.label !== undefined) args.push("--label", run.label);
      if (run.serverPid !== undefined) args.push("--server-pid", String(run.serverPid));
      args.push(run.uri);
    }
    return args;
  }

  /** Runs the harness to the end; rejects when it exits non-zero or reports nothing. */
  async run(run: HarnessRun): Promise<JobResult[]> {
    const args = this.args(run);
    const child = spawn("bash", [this.settings.harness, ...args], { stdio: ["ignore", "pipe", "inherit"], detached: true });
    this.child = child;
    let stdout = "";
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (chunk: string) => (stdout += chunk));
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once("error", reject);
      child.once("close", (exitCode, signal) => resolve(exitCode ?? (signal === null ? null : 128)));
    });
    this.child = undefined;
    const results = parseHarnessOutput(stdout);
    if (code !== 0) throw new Error(`nbd-bench.sh ${args.join(" ")} exited with ${code}`);
    if (results.length === 0) throw new Error(`nbd-bench.sh ${args.join(" ")} reported no results`);
    return results;
  }

  /** Ends a running harness with its fio and peers (its trap cleans its scratch dir). */
  async stop(): Promise<void> {
    const child = this.child;
    if (child?.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {
      return;
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // already gone
      }
    }, 20_000);
    await exited;
    clearTimeout(timer);
  }
}

export function parseHarnessOutput(stdout: string): JobResult[] {
  const results: JobResult[] = [];
  for (const line of stdout.split("\n")) {
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    try {
      const parsed = JSON.parse(trimmed) as JobResult;
      if (typeof parsed === "object" && parsed !== null && typeof parsed.job === "string") results.push(parsed);
    } catch {
      process.stderr.write(`bench: ignoring a harness line that is not JSON: ${trimmed.slice(0, 120)}\n`);
    }
  }
  return results;
}
