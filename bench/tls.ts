/**
 * NBD over TLS (issue 13): the cost of TLS for snaplog against qemu-nbd with the same
 * certificates. One `snaplog serve --tls optional` (plain and TLS clients on the same port and
 * data), and qemu-nbd on a raw file, plain then with tls-creds-x509; fio with its nbd engine
 * (libnbd, so `nbds://` works) runs a 1M sequential write QD8 (filling the export) and a 4K random
 * read QD32 on each. Ratios are what to read: this machine is shared.
 *
 *   npm run bench:tls -- [--runtime 10] [--size 1G] [--tmpdir /var/tmp]
 */
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import * as net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { makeTlsFixture } from "../test/support/tls-certs.js";
import { fio } from "./fio.js";
import { SERVER_NODE_FLAGS } from "../src/server/node-flags.js";
import { fioJobOptions, parseBenchArgs } from "./bench-args.js";

const cli = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const usage = `Usage: npm run bench:tls -- [options]   (or: node dist/bench/tls.js [options])

NBD over TLS: snaplog serve --tls optional, plain and TLS clients on the same data, against
qemu-nbd plain and with tls-creds-x509; fio 1M sequential write QD8 and 4K random read QD32.

  --runtime SEC   seconds per fio job (default 10)
  --size SIZE     the export (default 1G)
  --tmpdir DIR    parent of the scratch directory, a real disk (default /var/tmp)
  -h, --help      this text
`;
const values = parseBenchArgs(usage, fioJobOptions({ size: "1G", runtimeSeconds: 10 }));
const scratch = mkdtempSync(path.join(values.tmpdir, "snaplog-bench-tls-"));
const children: ChildProcess[] = [];
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
  rmSync(scratch, { recursive: true, force: true });
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number): Promise<void> {
  for (let tries = 0; tries < 200; tries++) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: "127.0.0.1", port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`nothing listens on ${port}`);
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await exited;
}

const certs = makeTlsFixture(mkdirSync(path.join(scratch, "certs"), { recursive: true })!);
const jobs = {
  seqwrite: ["--rw=write", "--bs=1m", "--iodepth=8", `--size=${values.size}`],
  randread: ["--rw=randread", "--bs=4k", "--iodepth=32", `--size=${values.size}`, "--time_based", `--runtime=${values.runtime}`],
};
// fio may not name a local certificate directory in a URI (libnbd refuses local file access there): the server is not verified in the bench.
const tlsQuery = "tls-verify-peer=false";

/** MB/s of each job against plain and TLS URIs of one server. */
async function measure(plainUri: string, tlsUri: string): Promise<Record<string, number>> {
  const result: Record<string, number> = {};
  for (const [name, args] of Object.entries(jobs)) {
    result[`${name}Plain`] = Number((await fio(plainUri, args)).mbPerSecond.toFixed(1));
    result[`${name}Tls`] = Number((await fio(tlsUri, args)).mbPerSecond.toFixed(1));
  }
  return result;
}

// snaplog: one server, --tls optional: both kinds of client on the same disk.
const store = path.join(scratch, "store");
execFileSync(process.execPath, [cli, "--store", store, "init"]);
execFileSync(process.execPath, [cli, "--store", store, "disk", "create", "d", "--size", values.size]);
const snaplogPort = await freePort();
const snaplog = spawn(
  process.execPath,
  [
    ...SERVER_NODE_FLAGS,
    cli,
    "--store",
    store,
    "serve",
    "--nbd",
    `127.0.0.1:${snaplogPort}`,
    "--tls-cert",
    certs.serverCert,
    "--tls-key",
    certs.serverKey,
    "--tls",
    "optional",
  ],
  { stdio: "ignore", env: { ...process.env, SNAPLOG_LOG_LEVEL: "warn" } },
);
children.push(snaplog);
await waitForPort(snaplogPort);
const snaplogResult = await measure(`nbd://127.0.0.1:${snaplogPort}/d`, `nbds://127.0.0.1:${snaplogPort}/d?${tlsQuery}`);
await stop(snaplog);

// qemu-nbd: the same file served plain, then with the same certificate.
const image = path.join(scratch, "qemu.raw");
execFileSync("qemu-img", ["create", "-f", "raw", "-o", "preallocation=full", image, values.size], { stdio: "ignore" });
async function qemuNbd(tls: boolean): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const tlsArgs = tls ? ["--object", `tls-creds-x509,id=tls0,dir=${certs.dir},endpoint=server,verify-peer=off`, "--tls-creds", "tls0"] : [];
  const child = spawn(
    "qemu-nbd",
    ["-f", "raw", "-x", "d", "-b", "127.0.0.1", "-p", String(port), "-t", "--cache=writeback", ...tlsArgs, image],
    {
      stdio: "ignore",
    },
  );
  children.push(child);
  await waitForPort(port);
  return { port, child };
}
const qemuResult: Record<string, number> = {};
for (const tls of [false, true]) {
  const server = await qemuNbd(tls);
  const uri = tls ? `nbds://127.0.0.1:${server.port}/d?${tlsQuery}` : `nbd://127.0.0.1:${server.port}/d`;
  for (const [name, args] of Object.entries(jobs))
    qemuResult[`${name}${tls ? "Tls" : "Plain"}`] = Number((await fio(uri, args)).mbPerSecond.toFixed(1));
  await stop(server.child);
}

const ratio = (a: number, b: number) => Number((a / b).toFixed(2));
console.log(
  JSON.stringify(
    {
      size: values.size,
      runtimeSeconds: Number(values.runtime),
      snaplog: snaplogResult,
      qemuNbd: qemuResult,
      snaplogTlsOverPlain: {
        seqwrite: ratio(snaplogResult.seqwriteTls, snaplogResult.seqwritePlain),
        randread: ratio(snaplogResult.randreadTls, snaplogResult.randreadPlain),
      },
      qemuTlsOverPlain: {
        seqwrite: ratio(qemuResult.seqwriteTls, qemuResult.seqwritePlain),
        randread: ratio(qemuResult.randreadTls, qemuResult.randreadPlain),
      },
      snaplogTlsOverQemuTls: {
        seqwrite: ratio(snaplogResult.seqwriteTls, qemuResult.seqwriteTls),
        randread: ratio(snaplogResult.randreadTls, qemuResult.randreadTls),
      },
    },
    null,
    2,
  ),
);
process.exit(0);
