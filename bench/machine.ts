/** What the report says about the machine and the tools: read from /proc, /sys and --version. */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  scratchDevice: string;
  scratchFsType: string;
  scratchDisk: string;
  nodeVersion: string;
  fioVersion: string;
  qemuVersion: string;
  nbdkitVersion: string;
  nbdServerVersion: string;
  libnbdVersion: string;
  snaplogCommit: string;
  harnessPath: string;
  harnessSha256: string;
  loadAverage: string;
}

function run(command: string, args: readonly string[], cwd?: string): string {
  try {
    return execFileSync(command, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], cwd, timeout: 10_000 }).trim();
  } catch (error) {
    // nbd-server -V exits non-zero on some versions but still prints its version.
    const failed = error as { stdout?: string; stderr?: string };
    const text = `${failed.stdout ?? ""}${failed.stderr ?? ""}`.trim();
    return text === "" ? "n/a" : text;
  }
}

function firstLine(text: string): string {
  return text.split("\n")[0]?.trim() ?? "n/a";
}

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8").trim();
  } catch {
    return undefined;
  }
}

/** "vda: virtio disk, non-rotational, scheduler none" and the like, from /sys/block. */
function describeBlockDevice(source: string): string {
  const name = path.basename(source);
  const candidates = [name, name.replace(/p?\d+$/, "")];
  for (const device of candidates) {
    const base = `/sys/block/${device}`;
    const rotational = readText(`${base}/queue/rotational`);
    if (rotational === undefined) continue;
    const model = readText(`${base}/device/model`);
    const vendor = readText(`${base}/device/vendor`);
    const scheduler = /\[([^\]]+)\]/.exec(readText(`${base}/queue/scheduler`) ?? "")?.[1] ?? "none";
    const sectors = Number(readText(`${base}/size`) ?? "0");
    const kind = device.startsWith("vd") ? "virtio disk" : device.startsWith("nvme") ? "NVMe" : "block device";
    const label = [vendor, model].filter((part) => part !== undefined && part !== "" && !/^0x[0-9a-f]+$/i.test(part)).join(" ");
    const parts = [
      `${device}: ${label === "" ? kind : `${kind}, ${label}`}`,
      `kernel reports ${rotational === "1" ? "rotational" : "non-rotational"}`,
      `scheduler ${scheduler}`,
    ];
    if (sectors > 0) parts.push(`${Math.round((sectors * 512) / 1024 ** 3)} GiB`);
    return parts.join(", ");
  }
  return source;
}

export function collectMachineInfo(scratch: string, repoRoot: string, harness: string | undefined): MachineInfo {
  const cpuinfo = readText("/proc/cpuinfo") ?? "";
  const cpuModel = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? "unknown";
  const df = run("df", ["--output=source,fstype", scratch]).split("\n")[1]?.trim().split(/\s+/) ?? [];
  const scratchDevice = df[0] ?? "unknown";
  const commit = run("git", ["rev-parse", "--short=12", "HEAD"], repoRoot);
  const dirty = run("git", ["status", "--porcelain", "--", "src"], repoRoot);
  let harnessSha256 = "n/a";
  if (harness !== undefined) {
    try {
      harnessSha256 = createHash("sha256").update(readFileSync(harness)).digest("hex").slice(0, 16);
    } catch {
      // unreadable: n/a
    }
  }
  return {
    cpuModel,
    cores: os.cpus().length,
    memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    kernel: `${os.type()} ${os.release()}`,
    scratchDevice,
    scratchFsType: df[1] ?? "unknown",
    scratchDisk: describeBlockDevice(scratchDevice),
    nodeVersion: process.version,
    fioVersion: firstLine(run("fio", ["--version"])),
    qemuVersion: firstLine(run("qemu-nbd", ["--version"])),
    nbdkitVersion: firstLine(run("nbdkit", ["--version"])),
    nbdServerVersion:
      run("nbd-server", ["-V"])
        .split("\n")
        .filter((line) => /version/i.test(line))
        .pop()
        ?.trim() ?? "n/a",
    libnbdVersion: firstLine(run("nbdinfo", ["--version"])),
    snaplogCommit: dirty !== "" && dirty !== "n/a" ? `${commit} (src/ has uncommitted changes)` : commit,
    harnessPath: harness ?? "(not found)",
    harnessSha256,
    loadAverage: os
      .loadavg()
      .map((value) => value.toFixed(2))
      .join(" "),
  };
}
