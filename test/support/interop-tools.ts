/**
 * Real NBD clients as child processes, and a reference raw image kept by the test.
 *
 * RefImage: what a disk (or a snapshot of it) should hold, as a plain file on the local file
 * system: every write the test sends to the server it also applies here with node:fs.
 * assertExportEquals compares an export with a RefImage twice, independently: `qemu-img
 * compare` (which uses block status: it skips ranges both sides report as zero) and a SHA-256
 * of every byte read with `nbdcopy --no-extents` (which never asks for block status), so a
 * server that lies in block status cannot hide wrong data.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { closeSync, copyFileSync, createReadStream, ftruncateSync, openSync, readSync, writeFileSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;
const toolTimeoutMs = 180_000;
/** nbdsh runs `python3 -m nbd`: prefer the system python, which has the libnbd module. */
export const NBDSH_ENV = { ...process.env, PATH: `/usr/bin:${process.env.PATH ?? ""}` };

export interface ToolRun {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ToolOptions {
  env?: NodeJS.ProcessEnv;
  /** Working directory (fio writes its verify state files there). */
  cwd?: string;
  timeoutMs?: number;
}

/** Runs a tool; never rejects on a non-zero exit (the caller asserts on `code`). */
export function runTool(tool: string, args: string[], options: ToolOptions = {}): Promise<ToolRun> {
  return new Promise((resolve, reject) => {
    execFile(
      tool,
      args,
      { env: options.env, cwd: options.cwd, timeout: options.timeoutMs ?? toolTimeoutMs, maxBuffer: 256 * MiB },
      (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== "number") {
          reject(new Error(`${tool} ${args.join(" ")}: ${error.message} ${stderr}`));
          return;
        }
        resolve({ code: error === null ? 0 : (error.code as number), stdout, stderr });
      },
    );
  });
}

/** Runs a tool and fails the test with its output unless it exits 0. */
export async function runOk(tool: string, args: string[], options: ToolOptions = {}): Promise<ToolRun> {
  const result = await runTool(tool, args, options);
  assert.equal(result.code, 0, `${tool} ${args.join(" ")} exited ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  return result;
}

/** qemu-io on a raw NBD URI: every command must succeed and every `read -P` must verify. */
export async function qemuIo(uri: string, commands: string[], options: { readOnly?: boolean } = {}): Promise<string> {
  const args = ["-f", "raw", ...(options.readOnly === true ? ["-r"] : []), ...commands.flatMap((command) => ["-c", command]), uri];
  const { stdout, stderr } = await runOk("qemu-io", args);
  assert.equal(stderr, "", `qemu-io stderr: ${stderr}`);
  assert.doesNotMatch(stdout, /Pattern verification failed|error|failed|Permission denied/i, stdout);
  return stdout;
}

/** Runs python statements in nbdsh and returns the JSON printed on the last line. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON a python script printed: each caller knows the shape it printed
export async function nbdsh(lines: string[]): Promise<any> {
  const { stdout } = await runOk("nbdsh", ["-c", ["import json", ...lines].join("\n")], { env: NBDSH_ENV });
  const last = stdout.trim().split("\n").pop() ?? "";
  return JSON.parse(last);
}

/** `qemu-img compare -f raw -F raw A B`: A and B are files or NBD URIs of the same size. */
export async function qemuImgCompare(first: string, second: string, label: string): Promise<void> {
  const result = await runTool("qemu-img", ["compare", "-f", "raw", "-F", "raw", first, second]);
  assert.equal(result.code, 0, `${label}: qemu-img compare ${first} ${second} exited ${result.code}: ${result.stdout} ${result.stderr}`);
  // A size mismatch is only a warning to qemu-img (it compares the rest with zeros): refuse it.
  assert.equal(result.stdout.trim(), "Images are identical.", `${label}: ${result.stdout} ${result.stderr}`);
}

/** SHA-256 of every byte of an export, read with `nbdcopy --no-extents URI -` (no block status). */
export function exportSha256(uri: string): Promise<{ sha256: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn("nbdcopy", ["--no-extents", uri, "-"], { stdio: ["ignore", "pipe", "pipe"] });
    const hash = createHash("sha256");
    let bytes = 0;
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
    });
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.once("error", reject);
    child.once("close", (code) => {
      if (code !== 0) reject(new Error(`nbdcopy --no-extents ${uri} - exited ${code}: ${stderr}`));
      else resolve({ sha256: hash.digest("hex"), bytes });
    });
  });
}

export function fileSha256(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    createReadStream(path, { highWaterMark: 4 * MiB })
      .on("data", (chunk) => hash.update(chunk))
      .once("error", reject)
      .once("end", () => resolve(hash.digest("hex")));
  });
}

/** Whether two files hold the same bytes (chunked compare: cheaper than hashing large files). */
export function filesEqual(first: string, second: string): boolean {
  const a = openSync(first, "r");
  const b = openSync(second, "r");
  try {
    const bufferA = Buffer.alloc(8 * MiB);
    const bufferB = Buffer.alloc(8 * MiB);
    for (let position = 0; ; position += bufferA.length) {
      const readA = readSync(a, bufferA, 0, bufferA.length, position);
      const readB = readSync(b, bufferB, 0, bufferB.length, position);
      if (readA !== readB || !bufferA.subarray(0, readA).equals(bufferB.subarray(0, readB))) return false;
      if (readA === 0) return true;
    }
  } finally {
    closeSync(a);
    closeSync(b);
  }
}

/**
 * Reads every byte of an export with `nbdcopy --no-extents URI -` (no block status) and compares
 * it with a file as it streams in. Resolves with the first differing offset, or undefined.
 */
export function exportDiffersFromFile(uri: string, path: string): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const child = spawn("nbdcopy", ["--no-extents", uri, "-"], { stdio: ["ignore", "pipe", "pipe"] });
    const fd = openSync(path, "r");
    const expected = Buffer.alloc(4 * MiB);
    let position = 0;
    let firstDifference: number | undefined;
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      if (firstDifference !== undefined) return;
      for (let done = 0; done < chunk.length;) {
        const length = Math.min(expected.length, chunk.length - done);
        const read = readSync(fd, expected, 0, length, position);
        if (read !== length || !expected.subarray(0, length).equals(chunk.subarray(done, done + length))) {
          firstDifference = position;
          return;
        }
        done += length;
        position += length;
      }
    });
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.once("error", reject);
    child.once("close", (code) => {
      const tail = Buffer.alloc(1);
      const longer = firstDifference === undefined && readSync(fd, tail, 0, 1, position) > 0;
      closeSync(fd);
      if (firstDifference === undefined && code !== 0) reject(new Error(`nbdcopy --no-extents ${uri} - exited ${code}: ${stderr}`));
      else resolve(firstDifference ?? (longer ? position : undefined));
    });
  });
}

/** The export holds exactly the reference image: qemu-img compare, and a full read hashed. */
export async function assertExportEquals(uri: string, ref: RefImage, label: string): Promise<void> {
  await qemuImgCompare(ref.path, uri, label);
  const [{ sha256, bytes }, expected] = await Promise.all([exportSha256(uri), fileSha256(ref.path)]);
  assert.equal(bytes, ref.sizeBytes, `${label}: ${uri} is ${bytes} bytes, expected ${ref.sizeBytes}`);
  assert.equal(sha256, expected, `${label}: the bytes read from ${uri} differ from ${ref.path}`);
}

/** `nbdinfo --map --json`, adjacent extents of the same type merged: [offset, length, type][]. */
export async function nbdMap(uri: string): Promise<Array<[number, number, number]>> {
  const { stdout } = await runOk("nbdinfo", ["--map", "--json", uri]);
  const merged: Array<[number, number, number]> = [];
  for (const extent of JSON.parse(stdout) as Array<{ offset: number; length: number; type: number }>) {
    const last = merged[merged.length - 1];
    if (last !== undefined && last[2] === extent.type && last[0] + last[1] === extent.offset) last[1] += extent.length;
    else merged.push([extent.offset, extent.length, extent.type]);
  }
  return merged;
}

/** A reference raw image: a sparse local file the test writes alongside the server. */
export class RefImage {
  constructor(
    readonly path: string,
    readonly sizeBytes: number,
  ) {}

  /** A zero-filled image (sparse). */
  static zeros(path: string, sizeBytes: number): RefImage {
    const fd = openSync(path, "w");
    try {
      ftruncateSync(fd, sizeBytes);
    } finally {
      closeSync(fd);
    }
    return new RefImage(path, sizeBytes);
  }

  /** A copy of `source`, zero-extended (or cut) to sizeBytes. */
  static copyOf(source: string, path: string, sizeBytes: number): RefImage {
    copyFileSync(source, path);
    const fd = openSync(path, "r+");
    try {
      ftruncateSync(fd, sizeBytes);
    } finally {
      closeSync(fd);
    }
    return new RefImage(path, sizeBytes);
  }

  write(offsetBytes: number, data: Buffer): void {
    assert.ok(
      offsetBytes >= 0 && offsetBytes + data.length <= this.sizeBytes,
      `reference write [${offsetBytes}, +${data.length}) past ${this.sizeBytes}`,
    );
    const fd = openSync(this.path, "r+");
    try {
      let done = 0;
      while (done < data.length) done += writeSync(fd, data, done, data.length - done, offsetBytes + done);
    } finally {
      closeSync(fd);
    }
  }

  fill(offsetBytes: number, lengthBytes: number, byte: number): void {
    this.write(offsetBytes, Buffer.alloc(lengthBytes, byte));
  }

  copyTo(path: string): RefImage {
    copyFileSync(this.path, path);
    return new RefImage(path, this.sizeBytes);
  }
}

/** One write sent with qemu-io and applied to the reference. */
export type IoOp =
  | { op: "pattern"; offset: number; length: number; byte: number }
  | { op: "random"; offset: number; length: number }
  | { op: "zero"; offset: number; length: number; unmap?: boolean }
  | { op: "discard"; offset: number; length: number };

/**
 * Sends `ops` to the export in one qemu-io run (each pattern write read back with `read -P`
 * at once, every random write read back after all ops) and applies them to `ref`.
 * A discard reads back as zeros on snaplog (whole blocks trimmed, partial edges zeroed).
 * The random source files qemu-io writes from (`write -s FILE`) go next to the reference.
 */
export async function applyIo(uri: string, ref: RefImage, ops: IoOp[], options: { flush?: boolean } = {}): Promise<void> {
  const scratchDir = dirname(ref.path);
  const commands: string[] = [];
  for (const [index, item] of ops.entries()) {
    switch (item.op) {
      case "pattern":
        commands.push(`write -P ${item.byte} ${item.offset} ${item.length}`, `read -P ${item.byte} ${item.offset} ${item.length}`);
        ref.fill(item.offset, item.length, item.byte);
        break;
      case "random": {
        const data = randomBytes(item.length);
        const source = join(scratchDir, `random-${randomBytes(6).toString("hex")}-${index}.bin`);
        writeFileSync(source, data);
        commands.push(`write -s ${source} ${item.offset} ${item.length}`);
        ref.write(item.offset, data);
        break;
      }
      case "zero":
        commands.push(
          `write -z${item.unmap === true ? " -u" : ""} ${item.offset} ${item.length}`,
          `read -P 0 ${item.offset} ${item.length}`,
        );
        ref.fill(item.offset, item.length, 0);
        break;
      case "discard":
        commands.push(`discard ${item.offset} ${item.length}`);
        ref.fill(item.offset, item.length, 0);
        break;
    }
  }
  if (options.flush !== false) commands.push("flush");
  await qemuIo(uri, commands);
}
