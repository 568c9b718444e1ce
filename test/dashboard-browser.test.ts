/**
 * Goal: the web dashboard (SPEC §3.3, issue 13) works for a person in a real browser against a
 * real appliance: it asks for the token once (a wrong one is refused with a message), shows the
 * disks, and its everyday actions do what they say — a snapshot made from the page appears in
 * the timeline, in the table and in `nbdinfo --list`; a point in time restored from the page as
 * a snapshot holds the data of that moment (read back with qemu-io); a policy changed on the
 * page is the store's policy, and one changed from the CLI shows on the page without a reload;
 * the event log grows live; compact, archive and delete run from the page; a refusal shows the
 * server's reason and changes nothing.
 * Method: `snaplog serve --api 127.0.0.1:0` as a child process, Debian's chromium driven by
 * playwright-core (nothing downloaded), qemu-io and nbdinfo as the hosts. (The screenshots in
 * docs/dashboard/ come from `npm run screenshots`, a longer scene.)
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import path from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { requireTool } from "./support/nbd-server.js";
import { snaplogCli, snaplogMainPath } from "./support/serve-child.js";
import { tempDir } from "./support/temp-dir.js";
import { qemuIo, runOk } from "./support/interop-tools.js";

const hasTools = requireTool("chromium", "chromium") && requireTool("qemu-io") && requireTool("nbdinfo");
const root = tempDir("dashboard-browser");
const store = path.join(root, "store");
const vaultDir = path.join(root, "vault");
let child: ChildProcessWithoutNullStreams;
let apiBase = "";
let nbdPort = 0;
let browser: Browser;
let page: Page;

const token = () => readFileSync(path.join(store, "api.token"), "utf8").trim();
const cli = async (...args: string[]) => {
  const run = await snaplogCli(store, args);
  assert.equal(run.code, 0, `snaplog ${args.join(" ")}: ${run.stderr}`);
  return run.stdout;
};
const nbdUri = (exportName: string) => `nbd://127.0.0.1:${nbdPort}/${encodeURIComponent(exportName)}`;

/** The local time a datetime-local input takes (the browser runs in this process's zone). */
function localInput(ms: number): string {
  const date = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** The page's CSP forbids eval, so waitForFunction cannot run here: poll the input instead. */
async function waitForValue(selector: string, value: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let seen = "";
  while (Date.now() < deadline) {
    seen = await page.inputValue(selector);
    if (seen === value) return;
    await page.waitForTimeout(100);
  }
  assert.fail(`${selector} shows "${seen}", not "${value}", after ${timeoutMs} ms`);
}

async function openDisk(name: string): Promise<void> {
  await page.click(`nav a:text-is("${name}")`);
  await page.waitForSelector(`section.disk h2:text-is("${name}")`);
}

describe("the web dashboard in a real browser", { skip: !hasTools }, () => {
  before(async () => {
    await cli("init");
    await cli("disk", "create", "db", "--size", "64M");
    await cli("disk", "create", "web", "--size", "32M");
    await cli("vault", "add", "offsite", `file://${vaultDir}`);
    child = spawn(process.execPath, [snaplogMainPath, "--store", store, "serve", "--nbd", "127.0.0.1:0", "--api", "127.0.0.1:0"], {
      env: { ...process.env, SNAPLOG_LOG_LEVEL: "warn" },
    });
    let stdout = "";
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk.toString();
        const api = /^api: (http:\/\/127\.0\.0\.1:\d+) /m.exec(stdout);
        const nbd = /^nbd: nbd:\/\/127\.0\.0\.1:(\d+)$/m.exec(stdout);
        if (api !== null && nbd !== null) {
          apiBase = api[1];
          nbdPort = Number(nbd[1]);
          resolve();
        }
      });
      child.once("exit", (code) => reject(new Error(`serve exited ${code}: ${stdout}`)));
    });
    // Something to chart: writes on both disks while the page is not open yet.
    await qemuIo(nbdUri("db"), ["write -P 0x11 0 8M", "flush"]);
    await qemuIo(nbdUri("web"), ["write -P 0x22 0 4M", "flush"]);
    const executablePath = execFileSync("which", ["chromium"], { encoding: "utf8" }).trim();
    browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on("pageerror", (error) => assert.fail(`the page threw: ${error.message}`));
  });

  after(async () => {
    await browser?.close();
    if (child !== undefined && child.exitCode === null) {
      child.kill("SIGKILL");
      await once(child, "exit");
    }
  });

  test("the page and its files are served without the token, everything else needs it; the page has a strict content security policy", async () => {
    const pageAnswer = await fetch(`${apiBase}/`);
    assert.equal(pageAnswer.status, 200);
    assert.match(pageAnswer.headers.get("content-security-policy") ?? "", /script-src 'self' 'sha256-/);
    assert.match(await pageAnswer.text(), /<meta name="snaplog-token" content="required">/);
    const status = async (route: string) => {
      const answer = await fetch(`${apiBase}${route}`);
      await answer.arrayBuffer();
      return answer.status;
    };
    assert.equal(await status("/assets/app/main.js"), 200);
    assert.equal(await status("/assets/vendor/uplot.js"), 200);
    assert.equal(await status("/assets/..%2fpackage.json"), 404);
    assert.equal(await status("/assets/app/nothing.js"), 404);
    assert.equal(await status("/v1/dashboard/series"), 401);
    assert.equal(await status("/v1/status"), 401);
  });

  test("it asks for the token once: a wrong one is refused with a message, the right one opens the overview", async () => {
    await page.goto(`${apiBase}/`);
    await page.fill("input[name=token]", "0".repeat(64));
    await page.click("button:text('Open the dashboard')");
    await page.waitForSelector("[role=alert]:has-text('That token was refused')");
    await page.fill("input[name=token]", token());
    await page.click("button:text('Open the dashboard')");
    await page.waitForSelector("table.disks tr[data-disk=db]");
    assert.ok(await page.isVisible("table.disks tr[data-disk=web]"));
    // The charts fill from the live series (a sample every 2 s).
    await page.waitForSelector("figure.chart canvas >> nth=1");
    // A reload keeps the token (this tab's session): no second question.
    await page.reload();
    await page.waitForSelector("table.disks tr[data-disk=db]");
  });

  test("a snapshot made on the page appears in the timeline, the table and nbdinfo --list", async () => {
    await openDisk("db");
    await page.fill("form[aria-label='create a snapshot'] input[name=snapshot]", "from-page");
    await page.click("button:text('Create snapshot')");
    await page.waitForSelector("[role=status]:has-text('Snapshot from-page created')");
    await page.waitForSelector("svg.timeline g[data-snapshot=from-page]");
    await page.waitForSelector("table.snapshots tr[data-snapshot=from-page]");
    const list = (await runOk("nbdinfo", ["--list", `nbd://127.0.0.1:${nbdPort}`])).stdout;
    assert.match(list, /export="db@from-page"/);
  });

  test("a point in time restored from the page as a snapshot holds that moment's data", async () => {
    await qemuIo(nbdUri("db"), ["write -P 0xa1 1M 1M", "flush"]);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    // Whole seconds: the moment is after the 0xa1 write by at least half a second, before 0xb2 by at least 1.5 s.
    const moment = Math.floor(Date.now() / 1000) * 1000;
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await qemuIo(nbdUri("db"), ["write -P 0xb2 1M 1M", "flush"]);
    await openDisk("db");
    await page.fill("form[aria-label='restore a point in time as a snapshot'] input[name=at]", localInput(moment));
    await page.fill("form[aria-label='restore a point in time as a snapshot'] input[name=as]", "before-b2");
    await page.click("button:text('Restore as snapshot')");
    await page.waitForSelector("[role=status]:has-text('as snapshot before-b2')");
    await page.waitForSelector("svg.timeline g[data-snapshot=before-b2]");
    await qemuIo(nbdUri("db@before-b2"), ["read -P 0xa1 1M 1M", "read -P 0x11 2M 1M"], { readOnly: true });
    await qemuIo(nbdUri("db"), ["read -P 0xb2 1M 1M"], { readOnly: true });
  });

  test("a policy saved on the page is the store's; one set from the CLI shows on the page without a reload", async () => {
    await openDisk("db");
    await page.fill("form.policy input[name=every]", "1h");
    await page.fill("form.policy input[name=keepLast]", "5");
    await page.click("button:text('Save policy')");
    await page.waitForSelector("[role=status]:has-text('Policy saved')");
    const shown = JSON.parse(await cli("policy", "show", "db", "--json")) as { snapshotEverySeconds: number; keepLast: number };
    assert.equal(shown.snapshotEverySeconds, 3600);
    assert.equal(shown.keepLast, 5);
    await cli("policy", "set", "db", "--keep-daily", "7");
    await waitForValue("form.policy input[name=keepDaily]", "7");
  });

  test("the event log grows live with what happens elsewhere", async () => {
    await page.click("nav a:text-is('Events')");
    await page.waitForSelector("table.event-log");
    const before = await page.locator("table.event-log tbody tr").count();
    await cli("snapshot", "create", "web", "--name", "from-cli");
    await page.waitForSelector("table.event-log td:has-text('snapshot from-cli of disk web created')");
    assert.ok((await page.locator("table.event-log tbody tr").count()) > before);
  });

  test("compact, archive now and delete run from the page", async () => {
    await openDisk("web");
    await page.click("button:text('Compact now')");
    await page.waitForSelector("[role=status]:has-text('Compacted')");
    await page.click("button:text('Archive now')");
    await page.waitForSelector("[role=status]:has-text('to offsite')");
    await page.click("nav a:text-is('Vaults')");
    await page.waitForSelector("div.vault[data-vault=offsite] td:has-text('web')");
    await openDisk("web");
    page.once("dialog", (dialog) => void dialog.accept());
    await page.click("table.snapshots tr[data-snapshot=from-cli] button:text('Delete')");
    await page.waitForSelector("[role=status]:has-text('Snapshot from-cli deleted')");
    const snapshots = JSON.parse(await cli("snapshot", "list", "web", "--json")) as Array<{ name: string }>;
    assert.ok(!snapshots.some((snapshot) => snapshot.name === "from-cli"));
  });

  test("a refusal shows the server's reason and changes nothing", async () => {
    await openDisk("db");
    const before = await cli("snapshot", "list", "db", "--json");
    await page.fill("form[aria-label='create a snapshot'] input[name=snapshot]", "from-page");
    await page.click("button:text('Create snapshot')");
    await page.waitForSelector("[role=alert]:has-text('Refused')");
    assert.match((await page.textContent("[role=alert]")) ?? "", /from-page/);
    await page.fill("form[aria-label='create a snapshot'] input[name=snapshot]", "no spaces allowed");
    await page.click("button:text('Create snapshot')");
    await page.waitForSelector("[role=alert]:has-text('no spaces allowed')");
    // A policy that cannot hold is refused whole: a constant LUN policy without a LUN.
    await page.selectOption("form.policy select[name=lunPolicy]", "constant");
    await page.click("button:text('Save policy')");
    await page.waitForSelector("form.policy [role=alert]:has-text('Refused')");
    assert.equal(await cli("snapshot", "list", "db", "--json"), before);
    const policy = JSON.parse(await cli("policy", "show", "db", "--json")) as { lunPolicy: string };
    assert.equal(policy.lunPolicy, "sequential");
  });

  test("shutdown is not held up by the open page's live streams (nor would it be by `events --follow`)", async () => {
    // The page follows the event log and the chart samples: two answers that never end by themselves.
    await page.click("nav a:text-is('Overview')");
    await page.waitForSelector("table.disks");
    const started = Date.now();
    child.kill("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    const exited = await Promise.race([
      once(child, "exit") as Promise<[number | null]>,
      new Promise<"still running">((resolve) => (timer = setTimeout(() => resolve("still running"), 30_000))),
    ]);
    clearTimeout(timer);
    assert.notEqual(exited, "still running", "serve did not stop within 30 s of SIGTERM while a dashboard was open");
    assert.deepEqual(exited, [0, null]);
    assert.ok(Date.now() - started < 30_000);
  });
});
