/**
 * Goal: actions attached to events (SPEC §4.3) run as the SPEC says — `exec:` by /bin/sh with the
 * six SNAPLOG_ variables, in its own process group, killed with all its children at the limit,
 * its output in the server log and a bounded tail in the event; `webhook:` POSTs the event as
 * JSON, a non-2xx answer or none is a failure; `compact` compacts; `archive:VAULT` ships the
 * event's snapshot to the vault — one at a time per disk and in order, disks not waiting for each other, every
 * run an event ("hook-run" or "hook-failed", reason = the triggering event), never a stuck or
 * crashed runner, and no action run again for events recorded before the runner started.
 *
 * Method: a real Store in a temp directory and the policy runner on it, real shell scripts that
 * write what they see into files, and a real HTTP receiver on 127.0.0.1:0 started here. Events
 * come from ordinary snapshot creates and deletes. Limits are lowered through the runner's options
 * (a command gets 700 ms instead of 60 s) so the hanging cases take a second, not a minute.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, existsSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { PolicyRunner, type PolicyRunnerOptions } from "../src/policy/runner.js";
import type { RunnerLogger } from "../src/policy/runner-context.js";
import type { StoreEvent } from "../src/store/event-log.js";
import { Store } from "../src/store/store.js";
import { collect } from "./support/ndjson.js";
import { tempDir } from "./support/temp-dir.js";
import { waitFor } from "./support/wait-for.js";

const DISK = "vm1";
const EXEC_TIMEOUT_MS = 700;

interface LogLine {
  level: string;
  message: string;
  fields?: Record<string, unknown>;
}

interface Harness {
  store: Store;
  runner: PolicyRunner;
  logs: LogLine[];
  directory: string;
}

async function start(prefix: string, options: PolicyRunnerOptions = {}): Promise<Harness> {
  const directory = tempDir(prefix);
  const storePath = path.join(directory, "store");
  await Store.init(storePath);
  const store = await Store.open(storePath, { mode: "server" });
  await store.createDisk({ name: DISK, sizeBytes: 1024 * 1024 });
  return { store, directory, ...startRunner(store, options) };
}

function startRunner(store: Store, options: PolicyRunnerOptions = {}): { runner: PolicyRunner; logs: LogLine[] } {
  const logs: LogLine[] = [];
  const logger: RunnerLogger = {
    info: (message, fields) => logs.push({ level: "info", message, fields }),
    warn: (message, fields) => logs.push({ level: "warn", message, fields }),
    error: (message, fields) => logs.push({ level: "error", message, fields }),
  };
  const runner = PolicyRunner.start(store, { logger, ...options, limits: { execTimeoutMs: EXEC_TIMEOUT_MS, ...options.limits } });
  return { runner, logs };
}

async function stop(harness: Harness): Promise<void> {
  await harness.runner.stop();
  await harness.store.close();
}

async function events(store: Store, ...types: string[]): Promise<StoreEvent[]> {
  return (await collect(store.readEvents({}))).filter((event) => types.includes(event.type));
}

function script(directory: string, name: string, body: string): string {
  const file = path.join(directory, name);
  writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return file;
}

/** Alive and not a zombie (a killed process whose parent has not reaped it yet is dead for us). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

test("exec: /bin/sh runs the command with the SPEC's six variables; each run is a hook-run event and its output goes to the server log", async () => {
  const harness = await start("hooks-env");
  const { store, runner, directory } = harness;
  const envScript = script(
    directory,
    "env.sh",
    `env | grep '^SNAPLOG_' | sort > "$1/$SNAPLOG_EVENT-$SNAPLOG_SNAPSHOT.env"\necho "hello from the hook"`,
  );
  const action = `exec:${envScript} ${directory}`;
  await store.setPolicy({
    disk: DISK,
    hooksAdd: [
      { event: "snapshot-created", action },
      { event: "snapshot-deleted", action },
    ],
  });
  const made = await store.createSnapshot({ disk: DISK, name: "s1" });
  await store.deleteSnapshot(DISK, "s1");
  await runner.settled();

  for (const type of ["snapshot-created", "snapshot-deleted"]) {
    const seen = readFileSync(path.join(directory, `${type}-s1.env`), "utf8")
      .trim()
      .split("\n");
    assert.deepEqual(seen, [
      `SNAPLOG_DISK=${DISK}`,
      `SNAPLOG_EVENT=${type}`,
      `SNAPLOG_LSN=${made.lsn}`,
      `SNAPLOG_LUN=${made.lun}`,
      "SNAPLOG_SNAPSHOT=s1",
      `SNAPLOG_STORE=${store.path}`,
    ]);
  }
  const triggers = await events(store, "snapshot-created", "snapshot-deleted");
  const runs = await events(store, "hook-run");
  assert.equal(runs.length, 2);
  for (const [index, run] of runs.entries()) {
    assert.equal(run.reason, triggers[index].type, "reason: the event that triggered it");
    assert.equal(run.disk, DISK);
    assert.equal(run.snapshot, "s1");
    assert.equal(run.details?.triggerSeq, triggers[index].seq);
    assert.equal(run.details?.exitStatus, 0);
    assert.equal(run.details?.action, action);
    assert.equal(typeof run.details?.durationMs, "number");
    assert.match(String(run.details?.output), /hello from the hook/);
  }
  assert.ok(
    harness.logs.some((line) => line.fields?.output === "hello from the hook\n"),
    "the output is in the server log",
  );
  assert.deepEqual(await events(store, "hook-failed"), []);
  await stop(harness);
});

test("actions run one at a time per disk, in event order, and a disk with a slow action does not hold up another", async () => {
  const harness = await start("hooks-order");
  const { store, runner, directory } = harness;
  await store.createDisk({ name: "slow", sizeBytes: 1024 * 1024 });
  const order = script(
    directory,
    "order.sh",
    `echo "start $SNAPLOG_SNAPSHOT" >> "$1/$SNAPLOG_DISK.log"\nsleep 0.2\necho "end $SNAPLOG_SNAPSHOT" >> "$1/$SNAPLOG_DISK.log"`,
  );
  await store.setPolicy({
    disk: DISK,
    hooksAdd: [
      { event: "snapshot-created", action: `exec:${order} ${directory}` },
      { event: "snapshot-created", action: `exec:echo "second action $SNAPLOG_SNAPSHOT" >> "${directory}/${DISK}.log"` },
    ],
  });
  await store.setPolicy({ disk: "slow", hooksAdd: [{ event: "snapshot-created", action: "exec:sleep 0.6" }] });
  await store.createSnapshot({ disk: "slow", name: "z" });
  for (const name of ["a1", "a2", "a3"]) await store.createSnapshot({ disk: DISK, name });
  await waitFor(
    "vm1's three runs",
    () =>
      existsSync(path.join(directory, `${DISK}.log`)) &&
      readFileSync(path.join(directory, `${DISK}.log`), "utf8").includes("second action a3"),
  );
  const log = readFileSync(path.join(directory, `${DISK}.log`), "utf8")
    .trim()
    .split("\n");
  assert.deepEqual(log, [
    "start a1",
    "end a1",
    "second action a1",
    "start a2",
    "end a2",
    "second action a2",
    "start a3",
    "end a3",
    "second action a3",
  ]);
  await runner.settled();
  const runs = await events(store, "hook-run");
  assert.equal(runs.length, 7);
  const slowDone = runs.findIndex((run) => run.disk === "slow");
  assert.ok(slowDone > 0, "the slow disk's action ended after vm1's first ones: vm1 did not wait for it");
  await stop(harness);
});

test("a hanging command is killed at the limit with its whole process group, a failing one is recorded, and the next actions run", async () => {
  const harness = await start("hooks-hang");
  const { store, runner, directory } = harness;
  const hang = script(directory, "hang.sh", `sleep 300 &\necho $! > "$1/child.pid"\necho $$ > "$1/shell.pid"\necho "going to hang"\nwait`);
  await store.setPolicy({
    disk: DISK,
    hooksAdd: [
      { event: "snapshot-created", action: `exec:${hang} ${directory}` },
      { event: "snapshot-created", action: "exec:echo after the hang" },
      { event: "snapshot-deleted", action: "exec:echo boom >&2; exit 3" },
    ],
  });
  const startedMs = Date.now();
  await store.createSnapshot({ disk: DISK, name: "h1" });
  await waitFor("the hang's pids", () => existsSync(path.join(directory, "child.pid")) && existsSync(path.join(directory, "shell.pid")));
  const childPid = Number(readFileSync(path.join(directory, "child.pid"), "utf8"));
  const shellPid = Number(readFileSync(path.join(directory, "shell.pid"), "utf8"));
  await runner.settled();
  assert.ok(Date.now() - startedMs >= EXEC_TIMEOUT_MS, "it ran until the limit");
  assert.ok(Date.now() - startedMs < EXEC_TIMEOUT_MS + 5000, "and not much longer");
  assert.ok(!isAlive(shellPid), "the shell is killed");
  assert.ok(!isAlive(childPid), "its child in the group is killed too");

  await store.deleteSnapshot(DISK, "h1");
  await runner.settled();
  const failed = await events(store, "hook-failed");
  assert.equal(failed.length, 2);
  assert.equal(failed[0].reason, "snapshot-created");
  assert.equal(failed[0].details?.timedOut, true);
  assert.equal(failed[0].details?.signal, "SIGKILL");
  assert.match(String(failed[0].details?.output), /going to hang/);
  assert.match(failed[0].message, /killed after 700 ms \(the limit\)/);
  assert.equal(failed[1].reason, "snapshot-deleted");
  assert.equal(failed[1].details?.exitStatus, 3);
  assert.match(String(failed[1].details?.output), /boom/);
  const runs = await events(store, "hook-run");
  assert.deepEqual(
    runs.map((run) => run.details?.action),
    ["exec:echo after the hang"],
    "the action after the hang ran",
  );
  await stop(harness);
});

test("a command's output is bounded: the event holds its tail, the log its newest bytes, the count is exact", async () => {
  const harness = await start("hooks-output", { limits: { outputBytesMax: 4096 } });
  const { store, runner } = harness;
  await store.setPolicy({
    disk: DISK,
    hooksAdd: [{ event: "snapshot-created", action: "exec:head -c 200000 /dev/zero | tr '\\0' x; echo END" }],
  });
  await store.createSnapshot({ disk: DISK, name: "o1" });
  await runner.settled();
  const [run] = await events(store, "hook-run");
  assert.equal(run.details?.outputBytes, 200_004);
  const output = String(run.details?.output);
  assert.equal(output.length, 1000);
  assert.ok(output.endsWith("xxxEND\n"));
  const logged = harness.logs.find((line) => line.fields?.output !== undefined);
  assert.equal(String(logged?.fields?.output).length, 4096);
  await stop(harness);
});

test("webhook: the event POSTed as JSON to a real receiver; a non-2xx answer, no answer and a refused connection are failures", async () => {
  const received: { method?: string; contentType?: string; body: string }[] = [];
  const held: ServerResponse[] = [];
  const receiver = createServer((request: IncomingMessage, response: ServerResponse) => {
    let body = "";
    request.on("data", (chunk: Buffer) => (body += chunk.toString()));
    request.on("end", () => {
      if (request.url === "/ok") {
        received.push({ method: request.method, contentType: request.headers["content-type"], body });
        response.writeHead(204).end();
      } else if (request.url === "/fail") {
        response.writeHead(500).end("nope, not today");
      } else {
        held.push(response); // never answered
      }
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  after(() => {
    for (const response of held) response.destroy();
    receiver.close();
  });
  const port = (receiver.address() as AddressInfo).port;
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
  const closedPort = (closed.address() as AddressInfo).port;
  await new Promise((resolve) => closed.close(resolve));

  const harness = await start("hooks-webhook", { limits: { webhookTimeoutMs: 500 } });
  const { store, runner } = harness;
  const base = `http://127.0.0.1:${port}`;
  await store.setPolicy({
    disk: DISK,
    hooksAdd: ["/ok", "/fail", "/hang"]
      .map((where) => ({ event: "snapshot-created" as const, action: `webhook:${base}${where}` }))
      .concat([{ event: "snapshot-created", action: `webhook:http://127.0.0.1:${closedPort}/` }]),
  });
  await store.createSnapshot({ disk: DISK, name: "w1" });
  await runner.settled();

  const [created] = await events(store, "snapshot-created");
  assert.equal(received.length, 1);
  assert.equal(received[0].method, "POST");
  assert.equal(received[0].contentType, "application/json");
  assert.deepEqual(JSON.parse(received[0].body), created, "the body is the event, as the log holds it");
  const [run] = await events(store, "hook-run");
  assert.equal(run.details?.httpStatus, 204);
  const failed = await events(store, "hook-failed");
  assert.deepEqual(
    failed.map((event) => [event.details?.action, event.details?.httpStatus]),
    [
      [`webhook:${base}/fail`, 500],
      [`webhook:${base}/hang`, null],
      [`webhook:http://127.0.0.1:${closedPort}/`, null],
    ],
  );
  assert.equal(failed[0].details?.body, "nope, not today");
  assert.match(failed[1].message, /no answer: no answer within 500 ms/);
  assert.match(failed[2].message, /ECONNREFUSED/);
  await stop(harness);
});

test("compact runs on its event; archive:VAULT ships the event's snapshot to the vault; a vault removed since fails as an event", async () => {
  const harness = await start("hooks-compact");
  const { store, runner, directory } = harness;
  await store.setPolicy({ disk: DISK, hooksAdd: [{ event: "snapshot-deleted", action: "compact" }] });
  await store.createSnapshot({ disk: DISK, name: "c1" });
  await store.deleteSnapshot(DISK, "c1");
  await runner.settled();
  const [run] = await events(store, "hook-run");
  assert.equal(run.reason, "snapshot-deleted");
  assert.equal(typeof run.details?.bytesFreed, "number");

  await assert.rejects(
    store.setPolicy({ disk: DISK, hooksAdd: [{ event: "snapshot-created", action: "archive:offsite" }] }),
    /vault offsite does not exist/,
  );
  await store.addVault({ name: "offsite", url: `file://${path.join(directory, "vault")}` });
  await store.setPolicy({ disk: DISK, hooksAdd: [{ event: "snapshot-created", action: "archive:offsite" }] });
  await store.createSnapshot({ disk: DISK, name: "c2" });
  await runner.settled();
  const archived = (await events(store, "hook-run")).find((event) => event.details?.action === "archive:offsite");
  assert.ok(archived !== undefined, "the archive ran");
  assert.equal(archived.details?.snapshot, "c2");
  const [chain] = await store.listVaultChains("offsite", DISK);
  assert.deepEqual(
    chain.items.map((item) => [item.snapshot, item.complete]),
    [["c2", true]],
  );
  const [archiveEvent] = await events(store, "archive");
  assert.equal(archiveEvent.snapshot, "c2");

  await store.removeVault("offsite");
  await store.createSnapshot({ disk: DISK, name: "c3" });
  await runner.settled();
  const [failed] = await events(store, "hook-failed");
  assert.match(failed.message, /archive:offsite of disk .* failed: no vault named offsite/);
  await stop(harness);
});

test("no action runs again for events recorded before the runner started; a runner stopped kills its command; a full queue drops runs as events", async () => {
  const harness = await start("hooks-restart", { limits: { runsQueuedMax: 2 } });
  const { store, directory } = harness;
  const counter = path.join(directory, "runs.log");
  await store.setPolicy({ disk: DISK, hooksAdd: [{ event: "snapshot-created", action: `exec:echo "$SNAPLOG_SNAPSHOT" >> ${counter}` }] });
  await store.createSnapshot({ disk: DISK, name: "r1" });
  await harness.runner.settled();
  await harness.runner.stop();
  // Recorded while no runner runs (a CLI on the store, the server down): never acted on later.
  await store.createSnapshot({ disk: DISK, name: "r2" });
  let { runner } = startRunner(store, { limits: { runsQueuedMax: 2 } });
  await runner.settled();
  await store.createSnapshot({ disk: DISK, name: "r3" });
  await runner.settled();
  assert.deepEqual(readFileSync(counter, "utf8").trim().split("\n"), ["r1", "r3"]);

  // A slow action and five events: two wait, the rest are dropped (each an event), none is lost silently.
  await store.setPolicy({ disk: DISK, hooksAdd: [{ event: "snapshot-created", action: "exec:sleep 0.3" }] });
  for (const name of ["q1", "q2", "q3", "q4", "q5"]) await store.createSnapshot({ disk: DISK, name });
  await runner.settled();
  const dropped = (await events(store, "hook-failed")).filter((event) => event.details?.dropped === true);
  const ran = (await events(store, "hook-run")).filter((event) => event.snapshot?.startsWith("q"));
  assert.equal(dropped.length + ran.length, 10, "every run either ran or was dropped as an event");
  assert.ok(dropped.length > 0);
  await runner.stop();

  // Stopping the runner kills a command under way, at once.
  ({ runner } = startRunner(store, { limits: { execTimeoutMs: 60_000 } }));
  await store.setPolicy({ disk: DISK, hooksRemove: [{ event: "snapshot-created" }] });
  await store.setPolicy({
    disk: DISK,
    hooksAdd: [{ event: "snapshot-created", action: `exec:echo $$ > ${directory}/long.pid; sleep 300` }],
  });
  await store.createSnapshot({ disk: DISK, name: "k1" });
  await waitFor("the long command", () => existsSync(path.join(directory, "long.pid")));
  const stoppingMs = Date.now();
  await runner.stop();
  assert.ok(Date.now() - stoppingMs < 5000, "stop does not wait for the limit");
  assert.ok(!isAlive(Number(readFileSync(path.join(directory, "long.pid"), "utf8"))));
  const [killed] = (await events(store, "hook-failed")).filter((event) => event.snapshot === "k1");
  assert.match(killed.message, /killed: the server stopped/);
  await store.close();
});
