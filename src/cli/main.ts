#!/usr/bin/env -S node --initial-old-space-size=128
/**
 * The `snaplog` command (SPEC §3.2). One file per command group registers its commands;
 * this file holds the global options and the one place where errors become output and an
 * exit code: one line `snaplog: <message>` on stderr (plus `hint: ...`), the exit code from
 * exit-code.ts, and 2 for usage errors found by commander.
 */
import { Command, CommanderError } from "commander";
import { oneLine } from "../api/http-status.js";
import { SnaplogError } from "../util/errors.js";
import { VERSION } from "../util/version.js";
import { defaultStoreDirectory } from "./context.js";
import { registerCompact } from "./compact.js";
import { registerMirror } from "./mirror.js";
import { registerDiff } from "./diff.js";
import { registerDisk } from "./disk.js";
import { registerEvents } from "./events.js";
import { exitCodeByCode, exitCodeOther, exitCodeSuccess, exitCodeUsage, ExitStatus } from "./exit-code.js";
import { registerInit } from "./init.js";
import { registerLog } from "./log.js";
import { registerPolicy } from "./policy.js";
import { registerRestore } from "./restore.js";
import { registerArchiveStreams } from "./archive-stream.js";
import { registerVault } from "./vault.js";
import { registerReplicate } from "./replicate.js";
import { registerScrub } from "./scrub.js";
import { registerServe } from "./serve.js";
import { registerSnapshot } from "./snapshot.js";
import { registerStatus } from "./status.js";
import { registerToken } from "./token.js";

/** Prints the error the one way and returns the exit code. */
export function reportError(error: unknown): number {
  if (error instanceof SnaplogError) {
    process.stderr.write(`snaplog: ${oneLine(error.message)}\n`);
    if (error.hint !== undefined) process.stderr.write(`hint: ${oneLine(error.hint)}\n`);
    return exitCodeByCode[error.code];
  }
  if (error instanceof CommanderError) {
    process.stderr.write(`snaplog: ${oneLine(error.message.replace(/^error: /, ""))}\n`);
    return exitCodeUsage;
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`snaplog: internal error: ${oneLine(message)}\n`);
  if (process.env.SNAPLOG_DEBUG !== undefined && error instanceof Error) process.stderr.write(`${error.stack}\n`);
  return exitCodeOther;
}

export function buildProgram(): Command {
  const program = new Command("snaplog");
  // Settings made before .command() are inherited by every subcommand.
  program
    .exitOverride()
    .configureOutput({ outputError: () => undefined })
    .showSuggestionAfterError(true)
    .version(VERSION, "-V, --version")
    .description("incremental block-storage appliance: every write logged, O(1) snapshots attached over NBD")
    .option("-s, --store <dir>", `store directory (default: $SNAPLOG_STORE, else ${defaultStoreDirectory})`)
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  $ snaplog init",
        "  $ snaplog disk create vm1 --size 10G",
        "  $ snaplog serve                      # NBD on 127.0.0.1:10809, API on STORE/api.sock",
        "  $ snaplog snapshot create vm1 --name before-upgrade",
        "  $ snaplog restore vm1 --at lsn:1200 --as-snapshot before-the-bug",
        "  $ snaplog --json log vm1 --since 2026-11-25T10:00:00Z   # NDJSON",
        "  $ snaplog --json disk list",
        "  $ snaplog scrub                      # exit status 9 when damage was found",
      ].join("\n"),
    );
  registerInit(program);
  registerServe(program, reportError);
  registerDisk(program);
  registerSnapshot(program);
  registerLog(program);
  registerDiff(program);
  registerRestore(program);
  registerArchiveStreams(program);
  registerVault(program);
  registerReplicate(program);
  registerCompact(program);
  registerMirror(program);
  registerScrub(program);
  registerPolicy(program);
  registerEvents(program);
  registerStatus(program);
  registerToken(program);
  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv], { from: "user" });
    return exitCodeSuccess;
  } catch (error) {
    if (error instanceof ExitStatus) return error.exitCode;
    if (error instanceof CommanderError) {
      if (error.code === "commander.helpDisplayed" || error.code === "commander.version") return exitCodeSuccess;
      // Help printed because a subcommand is missing ("snaplog disk"): a usage error.
      if (error.code === "commander.help") return exitCodeUsage;
    }
    return reportError(error);
  }
}

process.exitCode = await main(process.argv.slice(2));
