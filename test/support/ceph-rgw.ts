/**
 * A throwaway Ceph RGW as a real S3 endpoint for the vault tests: one mon, one memstore OSD
 * and one radosgw, all on 127.0.0.1 (free ports picked here), auth none, every file in a temp
 * directory. Objects live in the OSD's RAM (memstore) and are gone after stop().
 *
 * Needs the Debian packages (.ci/run installs them):
 *   apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw ceph-common curl
 * startCephRgwOrSkip() fails under CI when they are missing, and otherwise returns undefined
 * after a loud message, so the caller skips.
 *
 * Facts this relies on (found the hard way, see /work/shared/ceph-rgw/README.md):
 * - with auth none, radosgw's mon client must use `ms mon client mode = crc`, or it hangs;
 * - an anonymous GET / may answer 403: readiness is "any HTTP answer", then a signed request;
 * - RGW makes its pools lazily, seconds each, inside the first test: make them up front;
 * - no mgr: `ceph osd dump` (not `ceph -s`) tells whether the OSD is up.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ListBucketsCommand, S3Client } from "@aws-sdk/client-s3";

export const CEPH_PACKAGES = "ceph-mon ceph-osd radosgw ceph-common curl";
const binaries = ["ceph-mon", "ceph-osd", "radosgw", "ceph", "ceph-authtool", "monmaptool", "radosgw-admin"];
const rgwPools = [
  ".rgw.root",
  "default.rgw.log",
  "default.rgw.control",
  "default.rgw.meta",
  "default.rgw.buckets.index",
  "default.rgw.buckets.data",
  "default.rgw.buckets.non-ec",
];
const readyTimeoutMs = 120_000;
const stopGraceMs = 5_000;

export interface CephRgw {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** The temp directory holding the cluster's files and logs (removed by stop()). */
  directory: string;
  /** An S3 client for the test's own checks (bucket creation, ListMultipartUploads...). */
  client: S3Client;
  /** SIGKILL radosgw only: the mon and the OSD keep running, so nothing stored is lost. */
  killRadosgw(): Promise<void>;
  /** radosgw again on the same port, ready for signed S3 requests. */
  startRadosgw(): Promise<void>;
  /** TERM then KILL every daemon (by PID), then remove the directory. */
  stop(): Promise<void>;
}

/** The binaries that are not installed. */
export function missingCephBinaries(): string[] {
  const pathDirectories = (process.env.PATH ?? "").split(":").concat(["/usr/bin", "/usr/sbin"]);
  return binaries.filter((binary) => !pathDirectories.some((directory) => existsSync(path.join(directory, binary))));
}

/**
 * Starts RGW for a test file's before(); when the binaries are missing: throws under CI, else
 * prints a loud skip message and returns undefined.
 */
export async function startCephRgwOrSkip(): Promise<CephRgw | undefined> {
  const missing = missingCephBinaries();
  if (missing.length === 0) return startCephRgw();
  const message = `Ceph RGW not installed (missing ${missing.join(", ")}): apt-get install -y --no-install-recommends ${CEPH_PACKAGES}`;
  if (process.env.CI) throw new Error(`CI: ${message}`);
  process.stderr.write(`\n*** SKIPPING S3 vault tests: ${message} ***\n\n`);
  return undefined;
}

export async function startCephRgw(options: { memstoreBytes?: number } = {}): Promise<CephRgw> {
  const directory = mkdtempSync(path.join(tmpdir(), "snaplog-rgw-"));
  const daemons = new Map<string, ChildProcess>();
  const [monPort, monV1Port, rgwPort] = await freePorts(3);
  const conf = path.join(directory, "ceph.conf");
  const env = { ...process.env, CEPH_CONF: conf };
  const credentials = { accessKeyId: "SNAPLOGTESTACCESS001", secretAccessKey: `snaplog-test-secret-${randomUUID()}` };
  const endpoint = `http://127.0.0.1:${rgwPort}`;
  const client = new S3Client({
    region: "us-east-1",
    endpoint,
    forcePathStyle: true,
    credentials,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    maxAttempts: 1,
  });
  const ceph = (args: string[]) => run("ceph", ["--connect-timeout", "5", ...args], env);
  const daemon = (name: string, binary: string, args: string[]) => {
    const log = openSync(path.join(directory, "log", `${name}.stdout`), "a");
    const child = spawn(binary, ["-c", conf, "-f", ...args], { env, stdio: ["ignore", log, log] });
    closeSync(log);
    daemons.set(name, child);
    child.once("exit", () => {
      if (daemons.get(name) === child) daemons.delete(name);
    });
  };
  const stopDaemon = async (name: string, signal: NodeJS.Signals) => {
    const child = daemons.get(name);
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill(signal);
    if ((await Promise.race([exited, sleep(stopGraceMs, "timeout")])) === "timeout") {
      child.kill("SIGKILL");
      await exited;
    }
  };
  const stop = async () => {
    process.off("exit", killAll);
    for (const name of ["rgw", "osd", "mon"]) await stopDaemon(name, "SIGTERM");
    await client.destroy();
    rmSync(directory, { recursive: true, force: true });
  };
  const killAll = () => {
    for (const child of daemons.values()) child.kill("SIGKILL");
  };
  process.once("exit", killAll);

  const startRadosgw = async () => {
    daemon("rgw", "radosgw", ["-n", "client.rgw"]);
    await waitUntil("radosgw answers HTTP", async () => {
      if (!daemons.has("rgw")) throw new Error(`radosgw exited: ${tail(path.join(directory, "log", "client.rgw.log"))}`);
      return await fetch(`${endpoint}/`)
        .then(() => true)
        .catch(() => false);
    });
  };
  const waitForSignedRequests = () =>
    waitUntil("a signed S3 request succeeds", () =>
      client.send(new ListBucketsCommand({})).then(
        () => true,
        () => false,
      ),
    );

  try {
    for (const sub of ["mon", "osd", "rgw", "run", "log", "crash"]) mkdirSync(path.join(directory, sub));
    writeFileSync(conf, cephConf({ directory, monPort, monV1Port, rgwPort, memstoreBytes: options.memstoreBytes ?? 1024 ** 3 }));
    const keyring = path.join(directory, "keyring");
    await run("ceph-authtool", ["--create-keyring", keyring, "--gen-key", "-n", "mon.", "--cap", "mon", "allow *"], env);
    const fsid = /^fsid = (.*)$/m.exec(readFileSync(conf, "utf8"))?.[1] ?? "";
    const monmap = path.join(directory, "monmap");
    await run(
      "monmaptool",
      ["--create", "--fsid", fsid, "--addv", "a", `[v2:127.0.0.1:${monPort},v1:127.0.0.1:${monV1Port}]`, monmap],
      env,
    );
    await run("ceph-mon", ["-c", conf, "--mkfs", "-i", "a", "--monmap", monmap, "--keyring", keyring], env);
    daemon("mon", "ceph-mon", ["-i", "a"]);
    await waitUntil("the mon answers", () =>
      ceph(["mon", "stat"]).then(
        () => true,
        () => false,
      ),
    );

    const osdUuid = randomUUID();
    const osdId = (await ceph(["osd", "new", osdUuid])).trim();
    await run("ceph-osd", ["-c", conf, "-i", osdId, "--mkfs", "--osd-uuid", osdUuid], env);
    daemon("osd", "ceph-osd", ["-i", osdId]);
    await waitUntil(`osd.${osdId} is up`, async () =>
      new RegExp(`^osd\\.${osdId} up`, "m").test(await ceph(["osd", "dump"]).catch(() => "")),
    );

    for (const pool of rgwPools) {
      await ceph(["osd", "pool", "create", pool, "8", "8"]);
      await ceph(["osd", "pool", "application", "enable", pool, "rgw"]);
    }
    await startRadosgw();
    await run(
      "radosgw-admin",
      [
        "-n",
        "client.admin",
        "user",
        "create",
        "--uid",
        "snaplog-test",
        "--display-name",
        "snaplog test",
        "--access-key",
        credentials.accessKeyId,
        "--secret-key",
        credentials.secretAccessKey,
      ],
      env,
    );
    await waitForSignedRequests();
  } catch (error) {
    const logs = ["ceph-mon.a.log", "ceph-osd.0.log", "client.rgw.log"].map(
      (name) => `== ${name}\n${tail(path.join(directory, "log", name))}`,
    );
    await stop().catch(() => undefined);
    throw new Error(`Ceph RGW did not start: ${error instanceof Error ? error.message : String(error)}\n${logs.join("\n")}`, {
      cause: error,
    });
  }

  return {
    endpoint,
    region: "us-east-1",
    ...credentials,
    directory,
    client,
    killRadosgw: () => stopDaemon("rgw", "SIGKILL"),
    startRadosgw: async () => {
      await startRadosgw();
      await waitForSignedRequests();
    },
    stop,
  };
}

function cephConf(settings: { directory: string; monPort: number; monV1Port: number; rgwPort: number; memstoreBytes: number }): string {
  const { directory, monPort, monV1Port, rgwPort, memstoreBytes } = settings;
  return `[global]
fsid = ${randomUUID()}
mon host = [v2:127.0.0.1:${monPort},v1:127.0.0.1:${monV1Port}]
mon initial members = a
public addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
ms client mode = crc
keyring = ${directory}/keyring
run dir = ${directory}/run
admin socket = ${directory}/run/$name.asok
pid file = ${directory}/run/$name.pid
log file = ${directory}/log/$name.log
mon cluster log file = ${directory}/log/cluster.log
crash dir = ${directory}/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
paxos propose interval = 0.1
paxos min wait = 0.01

[mon]
mon data = ${directory}/mon

[osd]
osd data = ${directory}/osd
osd objectstore = memstore
memstore device bytes = ${memstoreBytes}

[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:${rgwPort}
rgw data = ${directory}/rgw
rgw enable usage log = false
`;
}

/** Ports the kernel hands out for port 0, released at once (ceph binds them a moment later). */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve) => {
          const server = createServer();
          server.listen(0, "127.0.0.1", () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((server) => (server.address() as { port: number }).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

function run(binary: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(binary, args, { env, timeout: 60_000 }, (error, stdout, stderr) => {
      if (error === null) resolve(stdout);
      else reject(new Error(`${binary} ${args.join(" ")}: ${error.message} ${stderr}`));
    });
  });
}

async function waitUntil(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + readyTimeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(250);
  }
}

function tail(file: string): string {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-8).join("\n");
  } catch {
    return "(no log)";
  }
}
