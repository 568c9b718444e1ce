/**
 * `snaplog serve` as a child process for interop tests against the real store: spawned on an
 * ephemeral TCP port (--nbd 127.0.0.1:0) and a unix socket (--nbd-socket), its endpoint lines
 * parsed, its control plane reached through the store's API socket (ApiClient, what the CLI
 * uses), and stopped either cleanly (SIGTERM, exit 0 expected) or by SIGKILL.
 * Call killServeChildren() from an after() hook registered before any child is started.
 */
import { spawn, execFile, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { ApiClient } from "../../src/api/client.js";

export const snaplogMainPath = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));
const startTimeoutMs = 30_000;
const stopTimeoutMs = 60_000;
const children = new Set<ChildProcessWithoutNullStreams>();

export interface ServeChild {
  readonly child: ChildProcessWithoutNullStreams;
  readonly storePath: string;
  readonly port: number;
  readonly socketPath: string;
  /** Control plane over STORE/api.sock. */
  readonly api: ApiClient;
  /** nbd://127.0.0.1:PORT/NAME */
  uri(exportName: string): string;
  /** nbd+unix:///NAME?socket=PATH */
  unixUri(exportName: string): string;
  /** Everything the server wrote on stderr so far (log level warn). */
  stderr(): string;
  /** SIGTERM; resolves when the child exited 0, rejects otherwise. */
  stop(): Promise<void>;
  /** SIGKILL; resolves when the child is gone. */
  kill(): Promise<void>;
}

/** SIGKILLs every child still running (for after()). */
export function killServeChildren(): void {
  for (const child of children) child.kill("SIGKILL");
  children.clear();
}

export async function startServeChild(storePath: string, socketPath: string): Promise<ServeChild> {
  const child = spawn(
    process.execPath,
    [snaplogMainPath, "--store", storePath, "serve", "--nbd", "127.0.0.1:0", "--nbd-socket", socketPath],
    {
      env: { ...process.env, SNAPLOG_LOG_LEVEL: "warn" },
    },
  );
  children.add(child);
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    }),
  );
  // Three lines: nbd TCP, nbd unix, api unix socket.
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start within ${startTimeoutMs} ms: ${stderr}`)), startTimeoutMs);
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.split("\n").filter((line) => line.length > 0).length >= 3) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`serve exited (${code ?? signal}) before listening: ${stderr}`));
    });
  });
  const match = /^nbd: nbd:\/\/127\.0\.0\.1:(\d+)$/m.exec(stdout);
  if (match === null) throw new Error(`no NBD TCP endpoint in: ${stdout}`);
  if (!stdout.includes(`nbd: nbd+unix:///?socket=${socketPath}`)) throw new Error(`no NBD unix endpoint in: ${stdout}`);
  const port = Number(match[1]);
  const api = await ApiClient.connectIfRunning(storePath);
  if (api === undefined) throw new Error(`the API does not answer on ${storePath}/api.sock`);

  const waitExit = async (what: string): Promise<{ code: number | null; signal: NodeJS.Signals | null }> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`serve did not exit within ${stopTimeoutMs} ms after ${what}: ${stderr}`)), stopTimeoutMs);
    });
    try {
      return await Promise.race([exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  };
  return {
    child,
    storePath,
    port,
    socketPath,
    api,
    uri: (exportName) => `nbd://127.0.0.1:${port}/${encodeURIComponent(exportName)}`,
    unixUri: (exportName) => `nbd+unix:///${encodeURIComponent(exportName)}?socket=${socketPath}`,
    stderr: () => stderr,
    stop: async () => {
      child.kill("SIGTERM");
      const { code, signal } = await waitExit("SIGTERM");
      if (code !== 0) throw new Error(`serve exited with ${code ?? signal} on SIGTERM: ${stderr}`);
    },
    kill: async () => {
      child.kill("SIGKILL");
      await waitExit("SIGKILL");
    },
  };
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the snaplog CLI on a store (through the running server's API when one answers). */
export function snaplogCli(storePath: string, args: string[], timeoutMs = 60_000): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(process.execPath, [snaplogMainPath, "--store", storePath, ...args], { timeout: timeoutMs }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** A `snaplog serve --api 127.0.0.1:0` child: the API's TCP port and token (a peer appliance, a vault). */
export interface ApiServeChild {
  storePath: string;
  port: number;
  token: string;
  /** SIGTERM; resolves when the child is gone. */
  stop(): Promise<void>;
}

/** `snaplog init` (unless the store exists) and `snaplog serve --api 127.0.0.1:0`; resolves once the API's TCP line is printed. */
export async function startApiServeChild(storePath: string): Promise<ApiServeChild> {
  if (!existsSync(path.join(storePath, "store.json"))) {
    const init = spawnSync(process.execPath, [snaplogMainPath, "--store", storePath, "init"], { encoding: "utf8" });
    if (init.status !== 0) throw new Error(`snaplog init: ${init.stderr}`);
  }
  const child = spawn(process.execPath, [snaplogMainPath, "--store", storePath, "serve", "--nbd", "127.0.0.1:0", "--api", "127.0.0.1:0"], {
    env: { ...process.env, SNAPLOG_LOG_LEVEL: "warn" },
  });
  children.add(child);
  const exited = new Promise<void>((resolve) =>
    child.once("exit", () => {
      children.delete(child);
      resolve();
    }),
  );
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${stderr}`)), 30_000);
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = /^api: http:\/\/127\.0\.0\.1:(\d+) /m.exec(stdout);
      if (match !== null) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`serve exited: ${stderr}`));
    });
  });
  const token = readFileSync(path.join(storePath, "api.token"), "utf8").trim();
  return {
    storePath,
    port,
    token,
    stop: async () => {
      child.kill("SIGTERM");
      await exited;
    },
  };
}
