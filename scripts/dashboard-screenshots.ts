/**
 * The dashboard's screenshots in docs/dashboard/ (the README shows them): a real appliance with
 * two disks written in bursts for a couple of minutes (qemu-io over NBD), a schedule, a mirror
 * leg, manual snapshots, a compaction, archives to a directory vault and a remote copy to a
 * second appliance, photographed by Debian's chromium through playwright-core. Run: `npm run screenshots [-- --out DIR --seconds N]`.
 */
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { chromium, type Page } from "playwright-core";

const { values } = parseArgs({
  options: { out: { type: "string", default: "docs/dashboard" }, seconds: { type: "string", default: "120" } },
});
const outDir = path.resolve(values.out);
const sceneMs = Number(values.seconds) * 1000;
const main = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const root = mkdtempSync(path.join(tmpdir(), "snaplog-screens-"));
const store = path.join(root, "store");

const snaplog = (...args: string[]) => execFileSync(process.execPath, [main, "--store", store, ...args], { encoding: "utf8" });
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

snaplog("init");
snaplog("disk", "create", "vm-root", "--size", "2G");
snaplog("disk", "create", "postgres", "--size", "1G");
snaplog("vault", "add", "offsite", `file://${path.join(root, "vault")}`);
snaplog("policy", "set", "vm-root", "--snapshot-every", "30s", "--keep-last", "3", "--mirror", path.join(root, "vm-root-mirror.img"));

// A second appliance: the redundant site postgres is replicated to.
const drStore = path.join(root, "dr-site");
execFileSync(process.execPath, [main, "--store", drStore, "init"]);
const drServer = spawn(process.execPath, [main, "--store", drStore, "serve", "--nbd", "127.0.0.1:0", "--replication", "127.0.0.1:0"], {
  env: { ...process.env, SNAPLOG_LOG_LEVEL: "warn" },
  stdio: ["ignore", "pipe", "inherit"],
});
let drStdout = "";
const drAddress = await new Promise<string>((resolve) =>
  drServer.stdout.on("data", (chunk: Buffer) => {
    drStdout += chunk.toString();
    const match = /^replication: snaplog:\/\/(\S+)\/DISK/m.exec(drStdout);
    if (match !== null) resolve(match[1]);
  }),
);
const server = spawn(process.execPath, [main, "--store", store, "serve", "--nbd", "127.0.0.1:0", "--api", "127.0.0.1:0"], {
  env: { ...process.env, SNAPLOG_LOG_LEVEL: "warn" },
  stdio: ["ignore", "pipe", "inherit"],
});
let stdout = "";
const { api, nbd } = await new Promise<{ api: string; nbd: string }>((resolve) =>
  server.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
    const apiMatch = /^api: (http:\S+)/m.exec(stdout);
    const nbdMatch = /^nbd: (nbd:\/\/\S+)$/m.exec(stdout);
    if (apiMatch !== null && nbdMatch !== null) resolve({ api: apiMatch[1], nbd: nbdMatch[1] });
  }),
);

try {
  snaplog("replicate", "postgres", "--to", `snaplog://${drAddress}/postgres`, "--token-file", path.join(drStore, "api.token"));
  // Bursts of writes, a different rhythm per disk, with snapshots, a compaction and archives on the way.
  const started = Date.now();
  let step = 0;
  while (Date.now() - started < sceneMs) {
    const rootMiB = 8 + ((step * 7) % 40);
    const pgMiB = step % 3 === 0 ? 24 : 4;
    execFileSync("qemu-io", ["-f", "raw", "-c", `write -P ${step % 250} ${(step * 37) % 1800}M ${rootMiB}M`, `${nbd}/vm-root`], {
      stdio: "ignore",
    });
    execFileSync("qemu-io", ["-f", "raw", "-c", `write -P ${step % 250} ${(step * 13) % 900}M ${pgMiB}M`, `${nbd}/postgres`], {
      stdio: "ignore",
    });
    if (step === 8) snaplog("snapshot", "create", "postgres", "--name", "before-migration");
    if (step === 14) snaplog("archive", "postgres", "--vault", "offsite");
    if (step === 20) snaplog("snapshot", "create", "vm-root", "--name", "before-upgrade");
    if (step === 30) snaplog("compact", "postgres");
    if (step === 34) snaplog("archive", "postgres", "--vault", "offsite");
    step++;
    await pause(1500);
  }

  const browser = await chromium.launch({
    executablePath: execFileSync("which", ["chromium"], { encoding: "utf8" }).trim(),
    args: ["--no-sandbox"],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  mkdirSync(outDir, { recursive: true });
  const shot = async (name: string, target: Page) => {
    await target.waitForTimeout(600);
    await target.mouse.wheel(0, -100_000);
    await target.screenshot({ path: path.join(outDir, `${name}.png`), fullPage: true });
    console.log(`${path.join(outDir, `${name}.png`)}`);
  };
  await page.goto(`${api}/`);
  await shot("login", page);
  await page.fill("input[name=token]", readFileSync(path.join(store, "api.token"), "utf8").trim());
  await page.click("button:text('Open the dashboard')");
  await page.waitForSelector("table.disks");
  await shot("overview", page);
  await page.click("nav a:text-is('postgres')");
  await page.waitForSelector("svg.timeline");
  await shot("disk", page);
  await page.fill("form[aria-label='create a snapshot'] input[name=snapshot]", "before-migration");
  await page.click("button:text('Create snapshot')");
  await page.waitForSelector("[role=alert]");
  await shot("refusal", page);
  await page.click("nav a:text-is('Vaults')");
  await page.waitForSelector("div.vault table");
  await shot("vaults", page);
  await page.click("nav a:text-is('Replication and mirrors')");
  await page.waitForSelector("tr[data-relation=postgres]");
  await shot("replication", page);
  await page.click("nav a:text-is('Events')");
  await page.waitForSelector("table.event-log");
  await shot("events", page);
  await browser.close();
} finally {
  server.kill("SIGTERM");
  drServer.kill("SIGTERM");
  await Promise.all([once(server, "exit"), once(drServer, "exit")]);
  rmSync(root, { recursive: true, force: true });
}
