/**
 * The snaplog CLI run synchronously for the CLI tests (the real binary, dist/src/cli/main.js),
 * the checks every command's output must pass (assertSuccess, assertFailure), and a store's
 * fingerprint (every file with a hash of its bytes: "nothing changed" means equal fingerprints).
 * For a CLI run next to a running server, in an async test, see snaplogCli in serve-child.ts.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { snaplogMainPath, type CliRun } from "./serve-child.js";

export interface CliOptions {
  /** Working directory of the command (relative paths in its arguments resolve there). */
  cwd?: string;
  /** Extra environment; SNAPLOG_STORE is cleared unless given here. */
  env?: Record<string, string>;
}

/** Runs `snaplog ARGS...` and waits for it; a command killed by its 60 s timeout has code -1. */
export function runCli(args: readonly string[], options: CliOptions = {}): CliRun {
  const result = spawnSync(process.execPath, [snaplogMainPath, ...args], {
    cwd: options.cwd,
    env: { ...process.env, SNAPLOG_STORE: "", ...options.env },
    encoding: "utf8",
    timeout: 60_000,
  });
  return { code: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/** `snaplog --store STORE ARGS...`, as a function of ARGS. */
export function cliForStore(storePath: string, options: CliOptions = {}): (...args: string[]) => CliRun {
  return (...args) => runCli(["--store", storePath, ...args], options);
}

/** Exit code 0 and nothing on stderr (no progress bar when piped). */
export function assertSuccess(result: CliRun, what = "the command"): void {
  assert.equal(result.code, 0, `${what}: ${result.stderr}`);
  assert.equal(result.stderr, "", `${what}: nothing on stderr (no progress bar when piped)`);
}

/** Exit code as expected, one `snaplog:` line, optionally one `hint:` line, nothing on stdout. */
export function assertFailure(result: CliRun, code: number, pattern?: RegExp): void {
  assert.equal(result.code, code, `exit code; stderr: ${result.stderr}`);
  const lines = result.stderr.trimEnd().split("\n");
  assert.match(lines[0], /^snaplog: \S/);
  if (pattern !== undefined) assert.match(lines[0], pattern);
  assert.ok(lines.length === 1 || (lines.length === 2 && lines[1].startsWith("hint: ")), `one line (+hint): ${result.stderr}`);
  assert.equal(result.stdout, "");
}

/** Every file under `root`, with a hash of its bytes: "nothing changed" means equal fingerprints. */
export function fingerprint(root: string): string {
  const hash = createHash("sha256");
  const walk = (relative: string): void => {
    for (const name of readdirSync(join(root, relative)).sort()) {
      const path = join(relative, name);
      if (statSync(join(root, path)).isDirectory()) walk(path);
      else
        hash
          .update(`${path}\0`)
          .update(readFileSync(join(root, path)))
          .update("\0");
    }
  };
  walk("");
  return hash.digest("hex");
}
