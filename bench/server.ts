/**
 * `snaplog serve` as a child process of the runner: NBD on a unix socket and a loopback port,
 * the API on STORE/api.sock. It runs in its own process group, so a Ctrl-C in the terminal
 * reaches only the runner, which then stops it once, cleanly (SIGTERM, wait).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { openSync, closeSync, readFileSync } from "node:fs";
import path from "node:path";
import { ApiClient } from "../src/api/client.js";
import { apiSocketPath } from "../src/store/paths.js";
import { SERVER_NODE_FLAGS } from "../src/server/node-flags.js";

export interface SnaplogServer {
  pid: number;
  storePath: string;
  nbdSocket: string;
  /** e.g. nbd://127.0.0.1:40123 */
  tcpUrl: string;
  api: ApiClient;
  logPath: string;
  /** nbd+unix:///EXPORT?socket=... */
  unixUri(exportName: string): string;
  stop(): Promise<void>;
  /** SIGKILL (a crash); resolves once it is gone. */
  kill(): Promise<void>;
}

export async function runCli(cli: string, args: readonly string[]): Promise<string> {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", resolve);
  });
  if (code !== 0) throw new Error(`snaplog ${args.join(" ")} exited with ${code}: ${output.trim()}`);
  return output;
}

export async function startServer(cli: string, storePath: string, scratch: string): Promise<SnaplogServer> {
  const nbdSocket = path.join(scratch, "nbd.sock");
  const logPath = path.join(scratch, "serve.log");
  const logFd = openSync(logPath, "a");
  let child: ChildProcess;
  try {
    child = spawn(
      process.execPath,
      [...SERVER_NODE_FLAGS, cli, "--store", storePath, "--json", "serve", "--nbd", "127.0.0.1:0", "--nbd-socket", nbdSocket],
      {
        stdio: ["ignore", "pipe", logFd],
        detached: true,
        env: { ...process.env, SNAPLOG_LOG_LEVEL: process.env.SNAPLOG_LOG_LEVEL ?? "warn" },
      },
    );
  } finally {
    closeSync(logFd);
  }
  const pid = child.pid;
  if (pid === undefined) throw new Error("could not start snaplog serve");
  let exited = false;
  const exitPromise = new Promise<void>((resolve) => child.once("exit", () => ((exited = true), resolve())));

  const stop = async (): Promise<void> => {
    if (exited) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => {
      if (!exited) {
        process.stderr.write("bench: snaplog serve ignored SIGTERM for 60 s; sending SIGKILL\n");
        child.kill("SIGKILL");
      }
    }, 60_000);
    await exitPromise;
    clearTimeout(timer);
  };

  try {
    const endpoints = await readEndpoints(child, exitPromise, logPath);
    const tcpUrl = endpoints.nbd.find((url) => url.startsWith("nbd://"));
    if (tcpUrl === undefined) throw new Error(`snaplog serve reported no TCP endpoint: ${JSON.stringify(endpoints)}`);
    const api = await ApiClient.connectIfRunning(storePath);
    if (api === undefined) throw new Error(`no API answers on ${apiSocketPath(storePath)}`);
    return {
      pid,
      storePath,
      nbdSocket,
      tcpUrl,
      api,
      logPath,
      unixUri: (exportName) => `nbd+unix:///${encodeURIComponent(exportName)}?socket=${nbdSocket}`,
      stop,
      kill: async () => {
        if (exited) return;
        child.kill("SIGKILL");
        await exitPromise;
      },
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** `serve --json` prints {endpoints, nbd, api} (pretty-printed) once it listens. */
async function readEndpoints(child: ChildProcess, exited: Promise<void>, logPath: string): Promise<{ nbd: string[] }> {
  let text = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`snaplog serve did not start in 30 s; log: ${tail(logPath)}`)), 30_000);
    child.stdout?.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      try {
        const parsed = JSON.parse(text) as { nbd: string[] };
        clearTimeout(timer);
        resolve(parsed);
      } catch {
        // not complete yet
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`snaplog serve exited at start; log: ${tail(logPath)}`));
    });
  });
}

export function tail(file: string, lines = 5): string {
  try {
    return readFileSync(file, "utf8").trim().split("\n").slice(-lines).join(" | ");
  } catch {
    return "(no log)";
  }
}
