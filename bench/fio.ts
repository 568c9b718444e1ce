/**
 * fio with its nbd engine against one export, for the benchmark scenarios that drive a load of
 * their own (the shared harness runs the measured jobs), and the "SIGKILL under a write load"
 * step the open-time scenarios share.
 */
import { spawn } from "node:child_process";
import type { SnaplogServer } from "./server.js";

/** Runs fio with `args`; resolves with what it printed (its JSON with --output-format=json), rejects when it fails. */
export function runFio(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("fio", args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.once("error", reject);
    child.once("close", (code) =>
      code === 0 ? resolve(stdout) : reject(new Error(`fio ${args.join(" ")} exited ${code}: ${(stderr || stdout).trim().slice(-400)}`)),
    );
  });
}

/** Runs fio on `uri`; resolves with its MB/s (reads and writes). */
export async function fio(uri: string, args: string[]): Promise<{ mbPerSecond: number }> {
  const stdout = await runFio([
    "--name=bench",
    "--ioengine=nbd",
    `--uri=${uri}`,
    "--output-format=json",
    "--norandommap",
    "--randrepeat=0",
    ...args,
  ]);
  const job = (JSON.parse(stdout.slice(stdout.indexOf("{"))) as { jobs: { write: { bw_bytes: number }; read: { bw_bytes: number } }[] })
    .jobs[0];
  return { mbPerSecond: (job.write.bw_bytes + job.read.bw_bytes) / 1e6 };
}

/**
 * 4 KiB random writes at queue depth 32 on `disk`, then SIGKILL of the server 5 s into them:
 * recovery will replay the journal's tail and check its unsynced data. Resolves with the
 * journal's size at the kill, once the load has ended too.
 */
export async function killUnderWriteLoad(server: SnaplogServer, disk: string, sizeBytes: number): Promise<number> {
  const load = fio(server.unixUri(disk), [
    "--rw=randwrite",
    "--bs=4k",
    "--iodepth=32",
    `--size=${sizeBytes}`,
    "--time_based",
    "--runtime=30",
  ]).catch(() => undefined);
  await new Promise((resolve) => setTimeout(resolve, 5000));
  const journalBytesAtKill = (await server.api.showDisk(disk)).journalBytes;
  await server.kill();
  await load;
  return journalBytesAtKill;
}
