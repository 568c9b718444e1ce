/**
 * Goal: the store lock tells a dead owner from a live one even while the kernel has not reaped
 * the dead one (issue 8, item 6). A CLI started under a wrapper (`timeout`, a shell) and killed
 * is a zombie until its parent reaps it; where that parent never does (or init reaps late, as in
 * many containers) the PID still answers kill(pid, 0), and the next command used to refuse with
 * "store … is in use by process N" for a process that can no longer touch anything.
 *
 * Method: real processes, exactly that sequence. A shell starts `snaplog serve` in the background
 * and then execs `sleep`, a parent that never reaps; the test SIGKILLs serve, checks that
 * /proc/PID/stat says Z and that store.lock still names that PID, then runs the next `snaplog`
 * command on the store: it must succeed while the owner is still a zombie. The negative space:
 * a lock naming a live process (the sleeping wrapper) is still refused.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { assertFailure, assertSuccess, cliForStore } from "./support/cli.js";
import { snaplogMainPath } from "./support/serve-child.js";
import { tempDir } from "./support/temp-dir.js";
import { waitFor } from "./support/wait-for.js";

const hasProc = (() => {
  try {
    readFileSync("/proc/self/stat");
    return true;
  } catch {
    return false;
  }
})();

/** Wrappers still running at the end (each holds a zombie until it goes). */
const wrappers = new Set<ChildProcess>();
after(() => {
  for (const wrapper of wrappers) wrapper.kill("SIGKILL");
});

/** The state letter of /proc/PID/stat (R, S, Z, ...), or undefined when there is no such process. */
function processState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // "PID (COMM) STATE ...": COMM may hold spaces and parentheses, so look after the last ')'.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
  } catch {
    return undefined;
  }
}

/**
 * `sh -c 'snaplog serve & echo $!; exec sleep'`: serve's parent becomes `sleep`, which never
 * reaps it. Resolves once serve listens, with serve's PID and the wrapper.
 */
async function serveUnderNonReapingWrapper(storePath: string): Promise<{ servePid: number; wrapper: ChildProcess }> {
  const quote = (text: string) => `'${text.replaceAll("'", `'\\''`)}'`;
  const serve = [process.execPath, snaplogMainPath, "--store", storePath, "serve", "--nbd", "127.0.0.1:0"].map(quote).join(" ");
  const wrapper = spawn("sh", ["-c", `${serve} 2>/dev/null & echo "pid $!"; exec sleep 600`], {
    env: { ...process.env, SNAPLOG_LOG_LEVEL: "warn", SNAPLOG_STORE: "" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  wrappers.add(wrapper);
  let stdout = "";
  wrapper.stdout!.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  await waitFor("serve to listen", () => /^pid \d+$/m.test(stdout) && /^api: /m.test(stdout), 30_000);
  return { servePid: Number(/^pid (\d+)$/m.exec(stdout)![1]), wrapper };
}

test(
  "a lock whose owner was killed and is still a zombie (its parent never reaps) is taken over",
  { skip: !hasProc && "no /proc" },
  async () => {
    const storePath = join(tempDir("lock-zombie"), "store");
    const snaplog = cliForStore(storePath);
    assertSuccess(snaplog("init"), "init");
    assertSuccess(snaplog("disk", "create", "d0", "--size", "1M"), "disk create");

    const { servePid, wrapper } = await serveUnderNonReapingWrapper(storePath);
    assert.equal(JSON.parse(readFileSync(join(storePath, "store.lock"), "utf8")).pid, servePid, "serve holds the store lock");

    process.kill(servePid, "SIGKILL");
    await waitFor(`process ${servePid} to be a zombie`, () => processState(servePid) === "Z");
    assert.equal(processState(wrapper.pid!), "S", "the wrapper (sleep) lives on and does not reap");
    assert.equal(JSON.parse(readFileSync(join(storePath, "store.lock"), "utf8")).pid, servePid, "the lock still names the dead owner");

    const list = snaplog("disk", "list");
    assertSuccess(list, "the next command after the owner died");
    assert.match(list.stdout, /\bd0\b/);
    assert.equal(processState(servePid), "Z", "the owner was a zombie all along the command (the sequence under test held)");
    const status = snaplog("status");
    assertSuccess(status, "and the one after it");
  },
);

test("a lock whose owner is alive is still refused", { skip: !hasProc && "no /proc" }, async () => {
  const storePath = join(tempDir("lock-live"), "store");
  const snaplog = cliForStore(storePath);
  assertSuccess(snaplog("init"), "init");
  // A live process that is not a snaplog owner of anything: a sleeping shell wrapper's sleep.
  const sleeper = spawn("sleep", ["600"], { stdio: "ignore" });
  wrappers.add(sleeper);
  await waitFor("sleep to run", () => processState(sleeper.pid!) === "S");
  const owner = { pid: sleeper.pid, startedAt: new Date().toISOString(), command: "snaplog serve" };
  writeFileSync(join(storePath, "store.lock"), JSON.stringify(owner) + "\n");

  assertFailure(snaplog("disk", "list"), 5, new RegExp(`is in use by process ${sleeper.pid}\\b`));
  sleeper.kill("SIGKILL");
  await waitFor("sleep to be reaped", () => processState(sleeper.pid!) === undefined);
  assertSuccess(snaplog("disk", "list"), "once the owner is gone");
});
