/**
 * BENCHMARKS.md from one run of bench/run.ts. Everything is generated except the text between
 * the analysis markers, which is carried over from the existing file so that notes written by
 * hand survive reruns.
 */
import { readFileSync } from "node:fs";
import type { Crc32cResult } from "./crc32c.js";
import { JOB_SHAPES, type JobResult } from "./harness.js";
import type { HistoryResults } from "./history.js";
import type { RecoveryResults } from "./recovery.js";
import type { MachineInfo } from "./machine.js";
import type { MultiConnectionResults } from "./multi-connection.js";

export const ANALYSIS_BEGIN = "<!-- analysis:begin -->";
export const ANALYSIS_END = "<!-- analysis:end -->";
export const ANALYSIS_PLACEHOLDER = "<!-- analysis: written by hand -->";
export const SEPARATE_RUNS_BEGIN = "<!-- separate-runs:begin -->";
export const SEPARATE_RUNS_END = "<!-- separate-runs:end -->";
const SEPARATE_RUNS_PLACEHOLDER =
  "<!-- the sections of npm run bench:archive, bench:replication, bench:tls, bench:mirror and the many-snapshots run go here, by hand -->";

export interface Settings {
  quick: boolean;
  size: string;
  runtimeSeconds: number;
  rampSeconds: number;
  jobs: readonly string[];
  peers: readonly string[];
  quietWaitSeconds: number;
  retries: number;
  maxForeignPct: number;
  snapshotCount: number;
  writesPerSnapshot: number;
  commandLine: string;
}

export interface DiskSnapshotState {
  /** Payload bytes the disk took over NBD (its prefill and jobs). */
  writtenBytes: number;
  entryCount: number;
  logBytes: number;
  segmentBytes: number;
  journalBytes: number;
  historySeconds: number;
}

export interface SnapshotScenario {
  diskName: string;
  snapshotName?: string;
  createdCount: number;
  createSeconds?: number;
  writtenBlocks: number;
  none?: JobResult;
  current?: JobResult;
  snapshotExport?: JobResult;
}

export interface RunData {
  /** Issue 3's history scenarios (bench/history.ts), when run. */
  history?: HistoryResults;
  /** Issue 7's recovery at scale (bench/recovery.ts), when run. */
  recovery?: RecoveryResults;
  startedAt: Date;
  finishedAt: Date;
  machine: MachineInfo;
  settings: Settings;
  /** Default history window. */
  snaplog: JobResult[];
  /** --history 0. */
  snaplogNoHistory: JobResult[];
  /** --history 24h. */
  snaplogDay: JobResult[];
  /** The jobs over several NBD connections, snaplog and peers (bench/multi-connection.ts). */
  multiConnection?: MultiConnectionResults;
  diskStates: { label: string; state: DiskSnapshotState }[];
  defaultHistorySeconds?: number;
  peers: JobResult[];
  peersSkippedReason?: string;
  snapshot: SnapshotScenario;
  crc?: Crc32cResult;
  errors: string[];
}

type Row = { key: string; label: string; results: JobResult[] };

const SNAPLOG_SHORT_NAMES: Record<string, string> = { snaplog: "snaplog", "snaplog-h0": "snaplog h0", "snaplog-h24": "snaplog h24" };

const PEER_LABELS: Record<string, string> = {
  "qemu-qcow2": "qemu-nbd / qcow2",
  "nbdkit-file": "nbdkit file",
  "local-direct": "raw disk (local-direct)",
  "nbdkit-memory": "nbdkit memory",
  "nbd-server": "nbd-server",
  "qemu-chain": "qemu-nbd / qcow2 chain",
};

// ---------------------------------------------------------------------------- formatting

function fmtInt(value: number | undefined): string {
  return value === undefined || !Number.isFinite(value) ? "—" : Math.round(value).toLocaleString("en-US");
}

function fmtNum(value: number | undefined, digits = 1): string {
  return value === undefined || !Number.isFinite(value) ? "—" : value.toFixed(digits);
}

function fmtRatio(ratio: number | undefined): string {
  return ratio === undefined || !Number.isFinite(ratio) ? "—" : `${ratio.toFixed(2)}×`;
}

function fmtBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

function fmtDuration(seconds: number): string {
  if (seconds === 0) return "0 (none)";
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

function table(headers: string[], rows: string[][], alignRight: boolean[] = []): string {
  const align = headers.map((_, index) => (alignRight[index] ? "---:" : "---"));
  return [`| ${headers.join(" | ")} |`, `| ${align.join(" | ")} |`, ...rows.map((row) => `| ${row.join(" | ")} |`)].join("\n");
}

// ---------------------------------------------------------------------------- lookups

/** Column alignment: the first `left` of `count` columns to the left, the rest (figures) to the right. */
function rightAfter(count: number, left: number): boolean[] {
  return Array.from({ length: count }, (_, index) => index >= left);
}

function find(results: readonly JobResult[], job: string): JobResult | undefined {
  return results.find((result) => result.phase === "job" && result.job === job);
}

function peerResults(data: RunData, peer: string): JobResult[] {
  return data.peers.filter((result) => result.target === peer);
}

/** Throughput ratio a ÷ b (IOPS; equal to the MB/s ratio for one block size). */
export function ratio(a: JobResult | undefined, b: JobResult | undefined): number | undefined {
  if (a?.iops === undefined || b?.iops === undefined || a.error !== undefined || b.error !== undefined || b.iops <= 0) return undefined;
  return a.iops / b.iops;
}

function rows(data: RunData): { snaplog: Row[]; peers: Row[] } {
  const snaplog: Row[] = [
    { key: "snaplog", label: `snaplog (history ${fmtDuration(data.defaultHistorySeconds ?? 3600)}, default)`, results: data.snaplog },
    { key: "snaplog-h0", label: "snaplog (--history 0)", results: data.snaplogNoHistory },
  ];
  if (data.snaplogDay.length > 0) snaplog.push({ key: "snaplog-h24", label: "snaplog (--history 24h)", results: data.snaplogDay });
  const peers: Row[] = data.settings.peers.map((peer) => ({
    key: peer,
    label: PEER_LABELS[peer] ?? peer,
    results: peerResults(data, peer),
  }));
  return { snaplog, peers };
}

// ---------------------------------------------------------------------------- sections

function machineSection(data: RunData): string {
  const m = data.machine;
  return [
    "## Machine",
    "",
    table(
      ["", ""],
      [
        [
          "date",
          `${data.startedAt.toISOString()} (run took ${((data.finishedAt.getTime() - data.startedAt.getTime()) / 60_000).toFixed(1)} min)`,
        ],
        ["CPU", `${m.cpuModel}, ${m.cores} cores`],
        ["memory", `${m.memoryGiB} GiB`],
        ["kernel", m.kernel],
        ["scratch disk", `${m.scratchDevice} (${m.scratchFsType}); ${m.scratchDisk}`],
        ["load average at start", m.loadAverage],
        ["node", m.nodeVersion],
        ["fio", m.fioVersion],
        ["libnbd", m.libnbdVersion],
        ["qemu-nbd", m.qemuVersion],
        ["nbdkit", m.nbdkitVersion],
        ["nbd-server", m.nbdServerVersion],
        ["snaplog commit", m.snaplogCommit],
        ["harness", `${m.harnessPath} (sha256 ${m.harnessSha256})`],
      ],
    ),
  ].join("\n");
}

function settingsSection(data: RunData): string {
  const s = data.settings;
  const jobRows = s.jobs.map((job) => {
    const shape = JOB_SHAPES[job];
    return [`\`${job}\``, shape?.description ?? "", shape?.rw ?? "", shape?.bs ?? "", String(shape?.iodepth ?? "")];
  });
  const peerNotes = [...new Set(data.peers.map((result) => `${result.target}: ${result.notes ?? ""}`))];
  return [
    "## Client and settings",
    "",
    `- Client: fio ${data.machine.fioVersion.replace(/^fio-/, "")} with its \`nbd\` ioengine (libnbd, userspace, no client page cache), one NBD connection per job, ` +
      "iodepth = NBD requests in flight on that connection, `numjobs=1`, `norandommap`, `randrepeat=0`; latency is fio's total latency (`lat`).",
    `- Harness: \`nbd-bench.sh\` (shared), working set \`--size ${s.size}\`, \`--ramp ${s.rampSeconds}\` s unmeasured + \`--runtime ${s.runtimeSeconds}\` s measured per job, ` +
      `\`--quiet-wait ${s.quietWaitSeconds}\`, \`--retries ${s.retries}\` (a job with > ${s.maxForeignPct} % foreign CPU is rerun, the least disturbed attempt is kept). ` +
      "Before the jobs the working set is written once sequentially (1 MiB, QD 8: the prefill), so reads hit data. Single runs, not medians.",
    "- Transport: unix sockets for snaplog and every peer (snaplog also listened on a loopback TCP port, unused by the jobs).",
    `- snaplog: \`snaplog serve\` child process on a fresh store (block size 4 KiB) in a scratch dir on ${data.machine.scratchDevice}; one fresh disk of \`--size ${s.size}\` per scenario, ` +
      `deleted after it; the server's CPU is read from /proc (\`--server-pid\`).`,
    `- Mode: ${s.quick ? "**quick** (smoke run: small working set, short jobs; not for comparison)" : "full"}. Command: \`${s.commandLine}\``,
    "",
    table(["job", "shape", "fio rw", "bs", "iodepth"], jobRows, [false, false, false, false, true]),
    ...(peerNotes.length > 0 ? ["", "Peers as the harness ran them:", "", ...peerNotes.map((note) => `- ${note}`)] : []),
  ].join("\n");
}

interface TargetCheck {
  name: string;
  required: number;
  ratios: (number | undefined)[];
  basis: string;
}

function verdict(value: number | undefined, required: number): string {
  if (value === undefined) return "n/a (not measured in this run)";
  if (value >= required) return `**met** (${fmtRatio(value)} ≥ ${required.toFixed(1)}×)`;
  const short = (1 - value / required) * 100;
  return `**missed** by ${short.toFixed(0)} % (${fmtRatio(value)} < ${required.toFixed(1)}×)`;
}

function targetsSection(data: RunData): string {
  const qcow2 = peerResults(data, "qemu-qcow2");
  const nbdkitFile = peerResults(data, "nbdkit-file");
  const snap = data.snapshot;
  const checks: TargetCheck[] = [
    {
      name: "4K random write QD32 ≥ 1.0× qemu-nbd/qcow2",
      required: 1.0,
      basis: "IOPS",
      ratios: [
        ratio(find(data.snaplog, "randwrite-4k-qd32"), find(qcow2, "randwrite-4k-qd32")),
        ratio(find(data.snaplogNoHistory, "randwrite-4k-qd32"), find(qcow2, "randwrite-4k-qd32")),
      ],
    },
    {
      name: "4K random read QD32 ≥ 1.0× qemu-nbd/qcow2",
      required: 1.0,
      basis: "IOPS",
      ratios: [
        ratio(find(data.snaplog, "randread-4k-qd32"), find(qcow2, "randread-4k-qd32")),
        ratio(find(data.snaplogNoHistory, "randread-4k-qd32"), find(qcow2, "randread-4k-qd32")),
      ],
    },
    {
      name: "1M sequential write QD8 ≥ 0.7× nbdkit file",
      required: 0.7,
      basis: "MB/s",
      ratios: [
        ratio(find(data.snaplog, "seqwrite-1m-qd8"), find(nbdkitFile, "seqwrite-1m-qd8")),
        ratio(find(data.snaplogNoHistory, "seqwrite-1m-qd8"), find(nbdkitFile, "seqwrite-1m-qd8")),
      ],
    },
    {
      name: `snapshot read, ${snap.createdCount.toLocaleString("en-US")} snapshots ≥ 0.9× none — current volume`,
      required: 0.9,
      basis: "IOPS, randread-4k-qd32",
      ratios: [ratio(snap.current, snap.none), undefined],
    },
    {
      name: `snapshot read, ${snap.createdCount.toLocaleString("en-US")} snapshots ≥ 0.9× none — snapshot export`,
      required: 0.9,
      basis: "IOPS, randread-4k-qd32",
      ratios: [ratio(snap.snapshotExport, snap.none), undefined],
    },
  ];
  // Issue 14's targets: where users feel it.
  const against = (job: string, peer: JobResult[], peerName: string, required: number, what: string): TargetCheck => ({
    name: `${what} ≥ ${required.toFixed(1)}× ${peerName}`,
    required,
    basis: job.startsWith("seq") ? "MB/s" : "IOPS",
    ratios: [ratio(find(data.snaplog, job), find(peer, job)), ratio(find(data.snaplogNoHistory, job), find(peer, job))],
  });
  checks.push(
    against("seqwrite-1m-qd8", qcow2, "qemu-nbd/qcow2", 1.0, "1M sequential write QD8"),
    against("seqwrite-1m-qd8", nbdkitFile, "nbdkit file", 0.5, "1M sequential write QD8"),
    against("seqread-1m-qd8", nbdkitFile, "nbdkit file", 0.6, "1M sequential read QD8"),
    against("randread-4k-qd32", nbdkitFile, "nbdkit file", 0.6, "4K random read QD32"),
    against("randwrite-4k-qd32", qcow2, "qemu-nbd/qcow2", 1.5, "4K random write QD32"),
    against("randwrite-4k-qd1", nbdkitFile, "nbdkit file", 0.7, "4K random write QD1"),
  );
  const rowsOut = checks.map((check) => [
    check.name,
    check.basis,
    fmtRatio(check.ratios[0]),
    verdict(check.ratios[0], check.required),
    check.ratios[1] === undefined && check.name.startsWith("snapshot") ? "—" : `${fmtRatio(check.ratios[1])}`,
  ]);
  return [
    "## Targets",
    "",
    "Ratios of snaplog to the peer, measured in this run (same machine, settings and working set). " +
      "The verdict is for the default history window; the `--history 0` column is for information. " +
      "The first five rows are the foundation's targets (issue 2 and the snapshot-read target), the rest issue 14's.",
    "",
    table(["target", "measured on", "snaplog (default window)", "verdict", "snaplog (--history 0)"], rowsOut, [
      false,
      false,
      true,
      false,
      true,
    ]),
  ].join("\n");
}

function resultsSection(data: RunData): string {
  const { snaplog, peers } = rows(data);
  const out: string[] = [
    "## Results per job",
    "",
    "IOPS, MB/s (10^6 bytes/s), p99 latency (µs), server CPU (% of one core; `—` where there is no server process) and foreign CPU " +
      "(host CPU used by neither fio nor the server, % of all cores: other load on this shared machine). " +
      "The last two columns are snaplog's throughput ÷ that row's.",
  ];
  for (const job of data.settings.jobs) {
    const base = find(snaplog[0].results, job);
    const baseNoHistory = find(snaplog[1].results, job);
    const tableRows = [...snaplog, ...peers].map((row) => {
      const result = find(row.results, job);
      const isSnaplog = row.key.startsWith("snaplog");
      return [
        row.label,
        result?.error !== undefined ? "ERROR" : fmtInt(result?.iops),
        fmtNum(result?.mb_s),
        fmtNum(result?.lat_p99_us),
        row.key === "local-direct" ? "—" : fmtNum(result?.server_cpu_pct_of_1_core, 0),
        fmtNum(result?.foreign_cpu_pct_all_cores),
        isSnaplog ? "" : fmtRatio(ratio(base, result)),
        isSnaplog ? "" : fmtRatio(ratio(baseNoHistory, result)),
      ];
    });
    const shape = JOB_SHAPES[job];
    out.push(
      "",
      `### \`${job}\` — ${shape?.description ?? job}, bs ${shape?.bs ?? "?"}, QD ${shape?.iodepth ?? "?"}`,
      "",
      table(
        ["target", "IOPS", "MB/s", "p99 µs", "server CPU %", "foreign %", "snaplog ÷ this", "snaplog h0 ÷ this"],
        tableRows,
        rightAfter(8, 1),
      ),
    );
  }

  // The matrix of ratios at a glance.
  const matrixRows = data.settings.jobs.map((job) => {
    const cells = [`\`${job}\``];
    for (const snapRow of snaplog)
      for (const peer of peers) cells.push(fmtRatio(ratio(find(snapRow.results, job), find(peer.results, job))));
    return cells;
  });
  const headers = ["job"];
  for (const snapRow of snaplog) for (const peer of peers) headers.push(`${SNAPLOG_SHORT_NAMES[snapRow.key] ?? snapRow.key} ÷ ${peer.key}`);
  out.push(
    "",
    "### Ratios at a glance (throughput, snaplog ÷ peer)",
    "",
    table(
      headers,
      matrixRows,
      headers.map((_, index) => index > 0),
    ),
  );
  if (data.peersSkippedReason !== undefined) out.push("", `Peers not run: ${data.peersSkippedReason}.`);

  const errors = [...data.snaplog, ...data.snaplogNoHistory, ...data.snaplogDay, ...data.peers].filter(
    (result) => result.error !== undefined,
  );
  if (errors.length > 0) {
    out.push("", "Jobs that failed:", "");
    for (const result of errors) out.push(`- ${result.target} / ${result.job}: ${result.error}`);
  }
  if (data.diskStates.length > 0) {
    out.push(
      "",
      "snaplog disks after their jobs (from `disk show`):",
      "",
      table(
        [
          "disk",
          "history",
          "written over NBD",
          "live entries",
          "log (live data)",
          "segment files",
          "journal",
          "segment files per GB written",
        ],
        data.diskStates.map(({ label, state }) => [
          label,
          fmtDuration(state.historySeconds),
          fmtBytes(state.writtenBytes),
          fmtInt(state.entryCount),
          fmtBytes(state.logBytes),
          fmtBytes(state.segmentBytes),
          fmtBytes(state.journalBytes),
          state.writtenBytes > 0 ? `${((state.segmentBytes / state.writtenBytes) * 1000).toFixed(0)} MB` : "—",
        ]),
        [false, true, true, true, true, true, true, true],
      ),
    );
  }
  return out.join("\n");
}

function snapshotSection(data: RunData): string {
  const snap = data.snapshot;
  const count = snap.createdCount.toLocaleString("en-US");
  const line = (label: string, exportName: string, result: JobResult | undefined): string[] => [
    label,
    `\`${exportName}\``,
    result?.error !== undefined ? "ERROR" : fmtInt(result?.iops),
    fmtNum(result?.mb_s),
    fmtNum(result?.lat_p99_us),
    fmtNum(result?.server_cpu_pct_of_1_core, 0),
    fmtRatio(ratio(result, snap.none)),
  ];
  const create =
    snap.createSeconds === undefined
      ? ""
      : `${count} snapshots were created in ${snap.createSeconds.toFixed(1)} s (${((snap.createSeconds * 1000) / Math.max(1, snap.createdCount)).toFixed(1)} ms each, ` +
        `including the writes), through the running server's HTTP API on its unix socket (ApiClient, in-process).`;
  return [
    "## Snapshot read",
    "",
    `Job \`randread-4k-qd32\` on disk \`${snap.diskName}\` (default history window): first with no snapshot (after the prefill), then after ${count} snapshots, ` +
      `each preceded by ${data.settings.writesPerSnapshot} random 4 KiB writes over the working set (${snap.writtenBlocks.toLocaleString("en-US")} blocks in all, pipelined on one NBD connection), ` +
      "so that every snapshot cuts a different log position. The runs after the snapshots skip the prefill, which would otherwise overwrite the history. " +
      `The snapshot export is the oldest snapshot: its reads walk past the most newer versions. ${create}`,
    "",
    table(
      ["volume", "export", "IOPS", "MB/s", "p99 µs", "server CPU %", "÷ no snapshots"],
      [
        line("current, no snapshots", snap.diskName, snap.none),
        line(`current, ${count} snapshots`, snap.diskName, snap.current),
        line(`snapshot export (oldest of ${count})`, `${snap.diskName}@${snap.snapshotName ?? "?"}`, snap.snapshotExport),
      ],
      [false, false, true, true, true, true, true],
    ),
  ].join("\n");
}

function crcSection(data: RunData): string {
  const crc = data.crc;
  if (crc === undefined) return "## CRC32C share of a 4 KiB write\n\nNot measured (the micro benchmark failed).";
  const write = find(data.snaplog, "randwrite-4k-qd32");
  const serverNsPerRequest =
    write?.iops !== undefined && write.server_cpu_pct_of_1_core !== undefined && write.iops > 0
      ? (write.server_cpu_pct_of_1_core / 100 / write.iops) * 1e9
      : undefined;
  const share = serverNsPerRequest === undefined ? undefined : (crc.crc32cNsPer4k / serverNsPerRequest) * 100;
  return [
    "## CRC32C share of a 4 KiB write",
    "",
    `\`bench/crc32c.ts\`: \`crc32c()\` (src/util/crc32c.ts, ${crc.implementation}) over 256 distinct 4 KiB buffers, ${crc.rounds} rounds of ${crc.blocksPerRound.toLocaleString("en-US")} blocks, median; ` +
      "next to a 4 KiB `Buffer.copy` (memcpy). The server computes one CRC32C per 4 KiB block written.",
    "",
    table(
      ["figure", "value"],
      [
        ["CRC32C, ns per 4 KiB", `${fmtNum(crc.crc32cNsPer4k)} ns (${fmtNum(crc.crc32cGbPerS, 1)} GB/s)`],
        ["memcpy (Buffer.copy), ns per 4 KiB", `${fmtNum(crc.memcpyNsPer4k)} ns`],
        ["@node-rs/crc32 (the fallback), ns per 4 KiB", `${fmtNum(crc.portableNsPer4k)} ns`],
        ["CRC32C ÷ memcpy", fmtRatio(crc.crc32cNsPer4k / crc.memcpyNsPer4k)],
        [
          "server CPU per request, `randwrite-4k-qd32` (snaplog, default window)",
          serverNsPerRequest === undefined
            ? "—"
            : `${fmtNum(serverNsPerRequest / 1000, 1)} µs (${fmtNum(write?.server_cpu_pct_of_1_core, 0)} % of a core at ${fmtInt(write?.iops)} IOPS)`,
        ],
        ["**CRC32C share of a 4 KiB write** (server CPU time)", share === undefined ? "—" : `**${share.toFixed(2)} %**`],
      ],
      [false, true],
    ),
  ].join("\n");
}

/** The hand-written analysis of the existing file, or the placeholder. */
export function preservedAnalysis(existingPath: string): string {
  return preservedBlock(existingPath, ANALYSIS_BEGIN, ANALYSIS_END) ?? ANALYSIS_PLACEHOLDER;
}

/** The sections of the separate benchmark scripts (archive, replication, TLS, mirror, many snapshots), kept as they are. */
export function preservedSeparateRuns(existingPath: string): string {
  return preservedBlock(existingPath, SEPARATE_RUNS_BEGIN, SEPARATE_RUNS_END) ?? SEPARATE_RUNS_PLACEHOLDER;
}

/** The text between two markers of the existing report, or undefined. */
function preservedBlock(existingPath: string, beginMarker: string, endMarker: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(existingPath, "utf8");
  } catch {
    return undefined;
  }
  const begin = text.indexOf(beginMarker);
  const end = text.indexOf(endMarker, begin + beginMarker.length);
  if (begin < 0 || end < 0) return undefined;
  const inner = text.slice(begin + beginMarker.length, end).trim();
  return inner === "" ? undefined : inner;
}

const SHORT_PEER_NAMES: Record<string, string> = {
  "qemu-qcow2": "qemu-nbd/qcow2",
  "nbdkit-file": "nbdkit file",
  "local-direct": "the raw disk",
};

function peerList(peers: readonly string[]): string {
  const names = peers.map((peer) => SHORT_PEER_NAMES[peer] ?? peer);
  if (names.length === 0) return "no peers (--skip-peers)";
  return names.length === 1 ? names[0] : `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
}

export function renderReport(data: RunData, analysis: string, separateRuns: string = SEPARATE_RUNS_PLACEHOLDER): string {
  const sections = [
    "# snaplog benchmarks",
    "",
    "<!-- Generated by `npm run bench` (bench/run.ts). Rerunning replaces everything except the text between the analysis markers. -->",
    "",
    `snaplog against ${peerList(data.settings.peers)}, all measured in one run on ${data.startedAt.toISOString().slice(0, 10)} ` +
      `with the same fio client and settings${data.settings.quick ? " (**quick smoke run — figures not comparable**)" : ""}. ` +
      "Shared, noisy machine: single runs, expect several % of run-to-run spread (see the foreign CPU column).",
    "",
    "Rerun: `npm run bench` (full, about 15 min; `-- --help` for options) or `npm run bench -- --quick --out /tmp/b.md` (smoke run, about 1 min).",
    "",
    machineSection(data),
    "",
    settingsSection(data),
    "",
    targetsSection(data),
    "",
    resultsSection(data),
    "",
    cpuSection(data),
    "",
    multiConnectionSection(data),
    "",
    snapshotSection(data),
    "",
    historySection(data),
    "",
    recoverySection(data),
    "",
    "<!-- Sections from separate benchmark scripts, each with its own date and command; rerunning npm run bench keeps them. -->",
    SEPARATE_RUNS_BEGIN,
    separateRuns,
    SEPARATE_RUNS_END,
    "",
    crcSection(data),
    "",
  ];
  if (data.errors.length > 0) {
    sections.push("## Errors in this run", "");
    for (const error of data.errors) sections.push(`- ${error}`);
    sections.push("");
  }
  sections.push("## Analysis", "", ANALYSIS_BEGIN, analysis, ANALYSIS_END, "");
  return sections.join("\n");
}

function recoverySection(data: RunData): string {
  const recovery = data.recovery;
  if (recovery === undefined) return "## Recovery at scale\n\nNot run in this run (`--scenarios` without `recovery`).";
  const out = [
    "## Recovery at scale",
    "",
    "`snaplog serve` from spawn to listening (node start-up included), each in a store of its own, and the server's peak " +
      "resident memory (VmHWM) when it listens. SPEC §2: opening takes seconds, bounded by the journal's fixed maximum size (target < 5 s).",
    "",
  ];
  const rows: string[][] = [];
  const full = recovery.fullJournal;
  if (full !== undefined) {
    rows.push([
      `after SIGKILL, journal full (${fmtBytes(full.journalBytes)}) of the smallest records: ${fmtInt(full.records)} records, ${fmtInt(full.writes)} one-block writes each with a FLUSH`,
      `${full.afterKill.seconds.toFixed(2)} s`,
      fmtBytes(full.afterKill.rssPeakBytes),
      verdict(5 / full.afterKill.seconds, 1),
    ]);
  }
  const many = recovery.manyEntries;
  if (many !== undefined) {
    rows.push([
      `clean stop, ${fmtInt(many.entries)} live entries (${fmtBytes(many.logBytes)} log, 512-byte blocks)`,
      `${many.clean.seconds.toFixed(2)} s`,
      fmtBytes(many.clean.rssPeakBytes),
      verdict(5 / many.clean.seconds, 1),
    ]);
    rows.push([
      `after SIGKILL under 4 KiB random writes, ${fmtInt(many.entries)} live entries, journal ${fmtBytes(many.journalBytesAtKill)} at the kill`,
      `${many.afterKill.seconds.toFixed(2)} s`,
      fmtBytes(many.afterKill.rssPeakBytes),
      verdict(5 / many.afterKill.seconds, 1),
    ]);
  }
  out.push(table(["start", "time", "server memory (peak)", "target < 5 s"], rows, [false, true, true, false]));
  return out.join("\n");
}

function historySection(data: RunData): string {
  const history = data.history;
  if (history === undefined) return "## History\n\nNot run in this run (`--scenarios` without `history`).";
  const gb = (bytes: number) => (bytes / 1e9).toFixed(2);
  const x = (value: number) => `${value.toFixed(2)}×`;
  const out = ["## History: compaction, points in time, opening", ""];
  const targets: string[][] = [];
  for (const hot of history.hotSets) {
    const held = hot.heldBytesAfter / hot.liveBytes;
    const files = hot.segmentBytesAfter / hot.liveBytes;
    targets.push([
      `log after compaction ≤ 1.1× live — hot set, ${hot.pattern}`,
      `held ${x(held)}; files ${x(files)}`,
      `${verdict(1.1 / held, 1)} (held); files ${files <= 1.1 ? "within" : "over"} 1.1×`,
    ]);
  }
  const compaction = history.compaction;
  const scanGbPerSecond = compaction === undefined ? undefined : gb(compaction.bytesScanned / (compaction.scanMs / 1000));
  if (compaction !== undefined) targets.push(["compaction throughput (log scanned)", `${scanGbPerSecond} GB/s`, "reported"]);
  const pit = history.pointInTime;
  if (pit !== undefined)
    targets.push([
      "point-in-time read ≥ 0.8× current (randread-4k-qd32)",
      fmtRatio(ratio(pit.point, pit.current)),
      verdict(ratio(pit.point, pit.current), 0.8),
    ]);
  const open = history.open;
  if (open !== undefined) {
    targets.push([
      `open with a ${fmtBytes(open.logBytes)} log, clean stop: < 2 s`,
      `${open.cleanSeconds.toFixed(2)} s`,
      verdict(2 / open.cleanSeconds, 1),
    ]);
    targets.push([
      `open with a ${fmtBytes(open.logBytes)} log, after SIGKILL: < 5 s`,
      `${open.killedSeconds.toFixed(2)} s`,
      verdict(5 / open.killedSeconds, 1),
    ]);
  }
  out.push(table(["target", "measured", "verdict"], targets), "");

  if (history.hotSets.length > 0) {
    out.push(
      "**Hot set.** A disk of the hot set's size with a zero window and no snapshots, overwritten ten times with fio (nbd engine), then `snaplog compact`. " +
        "*Held* is the log data entries hold (live + dead slots); *files* is what the segment files take on the file system, free slots included " +
        "(in-place compaction keeps freed slots where they are, on the free list, for the next writes; only wholly free segments go back).",
      "",
      table(
        ["pattern", "live", "held before", "held after", "files before", "files after", "free in files", "segments released", "write MB/s"],
        history.hotSets.map((hot) => [
          hot.pattern,
          fmtBytes(hot.liveBytes),
          fmtBytes(hot.heldBytesBefore),
          fmtBytes(hot.heldBytesAfter),
          fmtBytes(hot.segmentBytesBefore),
          fmtBytes(hot.segmentBytesAfter),
          fmtBytes(hot.freeBytesAfter),
          String(hot.segmentsReleased),
          fmtNum(hot.writeMbPerSecond),
        ]),
        [false, true, true, true, true, true, true, true, true],
      ),
      "",
    );
  }
  if (compaction !== undefined) {
    out.push(
      `**Compaction.** Ten 1 MiB sequential passes over a hot set on a disk with a window (every version kept: ${fmtBytes(compaction.logBytesBefore)} of log), ` +
        `then \`policy set --history 0\` and \`snaplog compact\`: ${fmtBytes(compaction.bytesScanned)} of log scanned in ${compaction.scanMs.toFixed(0)} ms ` +
        `(${scanGbPerSecond} GB/s; ${compaction.durationMs.toFixed(0)} ms in all, with the sync that makes the log durable first), ` +
        `${compaction.entriesFreed.toLocaleString("en-US")} entries (${fmtBytes(compaction.bytesFreed)}) freed, ` +
        `${fmtBytes(compaction.bytesMoved)} moved, ${compaction.segmentsReleased} segment files handed back; files after: ${fmtBytes(compaction.segmentBytesAfter)} for ${fmtBytes(compaction.liveBytes)} live.`,
      "",
    );
  }
  if (pit !== undefined) {
    const row = (label: string, exportName: string, result: JobResult | undefined) => [
      label,
      `\`${exportName}\``,
      fmtInt(result?.iops),
      fmtNum(result?.lat_p99_us),
      fmtNum(result?.server_cpu_pct_of_1_core, 0),
    ];
    out.push(
      `**Point in time.** A disk prefilled sequentially, then overwritten ${pit.passesAfter} times by 4 KiB random writes; \`randread-4k-qd32\` on the current volume and on the point before the overwrites (LSN ${pit.lsn}), whose reads walk past the newer versions of each block.`,
      "",
      table(
        ["volume", "export", "IOPS", "p99 µs", "server CPU %"],
        [row("current", "bench-pit", pit.current), row("point in time", `bench-pit@lsn:${pit.lsn}`, pit.point)],
        [false, false, true, true, true],
      ),
      "",
    );
  }
  if (open !== undefined) {
    out.push(
      `**Opening.** \`snaplog serve\` from spawn to listening (node start-up included) on a store whose disk holds ${fmtBytes(open.logBytes)} of log (${open.entries.toLocaleString("en-US")} entries): ` +
        `after a clean stop (final checkpoint, nothing to replay) ${open.cleanSeconds.toFixed(2)} s; after a SIGKILL 5 s into a 4 KiB random write load ` +
        `(journal at ${fmtBytes(open.journalBytesAtKill)}: checkpoint, journal replay, check of the unsynced tail's data) ${open.killedSeconds.toFixed(2)} s.`,
      "",
    );
  }
  return out.join("\n");
}

/** Server CPU-seconds per GB moved (reads and writes): CPU % of one core ÷ MB/s. */
function cpuPerGb(result: JobResult | undefined): string {
  if (result?.server_cpu_pct_of_1_core === undefined || result.mb_s === undefined || result.mb_s <= 0 || result.error !== undefined)
    return "—";
  return (result.server_cpu_pct_of_1_core / 100 / (result.mb_s / 1000)).toFixed(2);
}

function cpuSection(data: RunData): string {
  const { snaplog, peers } = rows(data);
  const targets = [...snaplog, ...peers].filter((row) => row.key !== "local-direct");
  const tableRows = data.settings.jobs.map((job) => [`\`${job}\``, ...targets.map((row) => cpuPerGb(find(row.results, job)))]);
  return [
    "## CPU per GB",
    "",
    "Server CPU-seconds per GB (10^9 bytes) read or written, per job: the server's CPU (% of one core, from /proc) ÷ its throughput, " +
      "from the tables above. The raw disk has no server process.",
    "",
    table(["job", ...targets.map((row) => row.label)], tableRows, [false, ...targets.map(() => true)]),
  ].join("\n");
}

function multiConnectionSection(data: RunData): string {
  const multi = data.multiConnection;
  if (multi === undefined) return "";
  const targets = ["snaplog", ...data.settings.peers];
  const out = [
    `## ${multi.connections} NBD connections`,
    "",
    `The same jobs with ${multi.connections} NBD connections at once (snaplog advertises CAN_MULTI_CONN): fio's nbd engine with ` +
      `\`numjobs=${multi.connections}\`, one connection per job, each on its own ${multi.connections}th of the working set ` +
      "(`offset_increment`), reported as one group; each target prefilled once. snaplog on a fresh disk with the default window; the peers " +
      "started by the runner as the harness starts them (qemu-nbd with `--shared`). No quiet wait or rerun here: server CPU is over the " +
      "whole fio run, ramp included.",
    "",
  ];
  const base = (job: string) =>
    find(
      multi.results.filter((result) => result.target === "snaplog"),
      job,
    );
  const tableRows: string[][] = [];
  for (const job of data.settings.jobs) {
    for (const target of targets) {
      const result = find(
        multi.results.filter((entry) => entry.target === target),
        job,
      );
      tableRows.push([
        `\`${job}\``,
        target === "snaplog" ? "snaplog (history 1 h, default)" : (PEER_LABELS[target] ?? target),
        result?.error !== undefined ? "ERROR" : fmtInt(result?.iops),
        fmtNum(result?.mb_s),
        fmtNum(result?.lat_p99_us),
        target === "local-direct" ? "—" : fmtNum(result?.server_cpu_pct_of_1_core, 0),
        cpuPerGb(result),
        target === "snaplog" ? "" : fmtRatio(ratio(base(job), result)),
      ]);
    }
  }
  out.push(
    table(["job", "target", "IOPS", "MB/s", "p99 µs", "server CPU %", "CPU s per GB", "snaplog ÷ this"], tableRows, rightAfter(8, 2)),
  );
  const errors = multi.results.filter((result) => result.error !== undefined);
  if (errors.length > 0) {
    out.push("", "Failed:", "");
    for (const result of errors) out.push(`- ${result.target} / ${result.job}: ${result.error}`);
  }
  return out.join("\n");
}
