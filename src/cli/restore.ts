/**
 * `snaplog restore DISK --at T (--to FILE | --as-snapshot NAME | --rollback [--name NAME])`:
 * materialize a point in time as a raw image, name it as a snapshot (O(1)), or roll the
 * current volume back to it (the state before is kept as a snapshot).
 */
import path from "node:path";
import type { Command } from "commander";
import { checkName } from "../store/names.js";
import { checkRestoreRequest, type RestoreRequest, type RestoreResult } from "../store/operations/index.js";
import { checkNewSnapshotName } from "../store/new-snapshot-name.js";
import { describePoint, parsePoint } from "../store/point-spec.js";
import { formatBytes, parseCount } from "../util/parse.js";
import { runOperation } from "./context.js";
import { printLine } from "./output.js";

interface RestoreOptions {
  at: string;
  to?: string;
  asSnapshot?: string;
  rollback?: boolean;
  name?: string;
  lun?: string;
}

export function registerRestore(program: Command): void {
  program
    .command("restore")
    .description("materialize a point in time as a file, name it as a snapshot, or roll the disk back to it")
    .argument("<disk>", "disk name")
    .requiredOption("--at <T>", "the point: lsn:N, an ISO 8601 time with its zone (inside the history window) or a snapshot name")
    .option("--to <file>", "write a raw image of the disk at T to this new file (sparse where it reads zeros)")
    .option("--as-snapshot <name>", "name the point as a new read-only snapshot (instant, copies nothing)")
    .option("--rollback", "roll the current volume back to T; the state before is kept as a snapshot")
    .option("--name <name>", "with --rollback: name of the snapshot keeping the state before (default before-rollback-<time>)")
    .option("--lun <n>", "LUN of the new snapshot (--as-snapshot, or the state before a --rollback)")
    .addHelpText(
      "after",
      [
        "",
        "Exactly one of --to, --as-snapshot and --rollback. A rollback fails the connections made",
        "to the current volume before it; hosts reconnect to see the rolled-back disk. A progress",
        "bar shows on a terminal.",
        "",
        "Examples:",
        "  $ snaplog restore vm1 --at 2026-11-25T10:00:00Z --to ./vm1-at-10.raw",
        "  $ snaplog restore vm1 --at lsn:1200 --as-snapshot before-the-bug",
        "  $ snaplog restore vm1 --at before-upgrade --rollback --name broken-upgrade",
      ].join("\n"),
    )
    .action(async (disk: string, options: RestoreOptions, command: Command) => {
      const request = restoreRequest(checkName("disk", disk), options);
      await runOperation(command, {
        run: (operations, onProgress) => operations.restore(request, onProgress),
        print: (result) => printLine(describeRestore(result)),
        progress: { label: `restore ${request.disk}`, unit: "bytes" },
      });
    });
}

/** Every option is checked here, with the store's own checks, before the store is touched. */
function restoreRequest(disk: string, options: RestoreOptions): RestoreRequest {
  parsePoint(options.at, "--at");
  const request: RestoreRequest = { disk, at: options.at };
  // Absolute, because a running server resolves paths from its own directory.
  if (options.to !== undefined) request.to = path.resolve(options.to);
  if (options.asSnapshot !== undefined) request.asSnapshot = checkNewSnapshotName(options.asSnapshot);
  if (options.rollback === true) request.rollback = true;
  if (options.name !== undefined) request.name = checkNewSnapshotName(options.name);
  if (options.lun !== undefined) request.lun = parseCount(options.lun, "LUN");
  checkRestoreRequest(request);
  return request;
}

function describeRestore(result: RestoreResult): string {
  const point = describePoint(result.lsn, result.time);
  if (result.mode === "file" && result.file !== undefined) {
    const { path: filePath, sizeBytes, bytesWritten } = result.file;
    return `restored ${result.disk} at ${point} to ${filePath}: ${formatBytes(sizeBytes)}, ${formatBytes(bytesWritten)} written (the rest reads as zeros)`;
  }
  if (result.mode === "snapshot" && result.snapshot !== undefined) {
    return `restored ${result.disk} at ${point} as snapshot ${result.snapshot.name}: LUN ${result.snapshot.lun ?? "none"}`;
  }
  const before =
    result.before === undefined ? "" : `; the state before is snapshot ${result.before.name} (LUN ${result.before.lun ?? "none"})`;
  return `rolled ${result.disk} back to ${point}: ${result.blocksRestored ?? 0} blocks restored${before}`;
}
