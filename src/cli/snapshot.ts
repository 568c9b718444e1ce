/** `snaplog snapshot create | list | delete`. */
import type { Command } from "commander";
import { checkName } from "../store/names.js";
import { checkNewSnapshotName } from "../store/new-snapshot-name.js";
import type { CreateSnapshotRequest, DeleteSnapshotResult } from "../store/operations/index.js";
import { formatBytes, parseCount } from "../util/parse.js";
import { runOperation } from "./context.js";
import { snapshotColumns } from "./disk.js";
import { printLine, printTable } from "./output.js";

export function registerSnapshot(program: Command): void {
  const snapshot = program.command("snapshot").description("create, list and delete snapshots");
  registerSnapshotCreate(snapshot);
  registerSnapshotList(snapshot);
  registerSnapshotDelete(snapshot);
}

function registerSnapshotCreate(snapshot: Command): void {
  snapshot
    .command("create")
    .description("cut the disk's log: the current partition becomes a read-only snapshot volume (O(1), copies nothing)")
    .argument("<disk>", "disk name")
    .option("--name <name>", "snapshot name (default: from the time, e.g. snap-20261125T100000Z)")
    .option("--lun <n>", "LUN for the snapshot volume (required by --lun-policy explicit; default: the disk's LUN policy)")
    .addHelpText(
      "after",
      "\nExamples:\n  $ snaplog snapshot create vm1\n  $ snaplog snapshot create vm1 --name before-upgrade --lun 12\n\nAttach it read-only as the NBD export DISK@NAME, or lun:N.",
    )
    .action(async (disk: string, options: { name?: string; lun?: string }, command: Command) => {
      const request: CreateSnapshotRequest = { disk: checkName("disk", disk) };
      if (options.name !== undefined) request.name = checkNewSnapshotName(options.name);
      if (options.lun !== undefined) request.lun = parseCount(options.lun, "LUN");
      await runOperation(command, {
        run: (operations) => operations.createSnapshot(request),
        print: (created) =>
          printLine(
            `created snapshot ${created.name} of ${created.disk}: LUN ${created.lun ?? "none"}, LSN ${created.lsn}, at ${created.createdAt}`,
          ),
      });
    });
}

function registerSnapshotList(snapshot: Command): void {
  snapshot
    .command("list")
    .description("list a disk's snapshots, oldest first")
    .argument("<disk>", "disk name")
    .action(async (disk: string, _options: unknown, command: Command) => {
      const diskName = checkName("disk", disk);
      await runOperation(command, {
        run: (operations) => operations.listSnapshots(diskName),
        print: (snapshots) => printTable(snapshots, snapshotColumns, `no snapshots of ${diskName}`),
      });
    });
}

function registerSnapshotDelete(snapshot: Command): void {
  snapshot
    .command("delete")
    .description("delete a snapshot: its LUN is released and its partition merges into the next one")
    .argument("<disk>", "disk name")
    .argument("<name>", "snapshot name")
    .addHelpText(
      "after",
      [
        "",
        "With the disk's compact-on-delete policy on (the default), the entries only this",
        "snapshot needed are freed at once; otherwise the next compaction frees them.",
        "",
        "Examples:",
        "  $ snaplog snapshot delete vm1 before-upgrade",
        "  $ snaplog --json snapshot delete vm1 snap-20261125T100000Z",
      ].join("\n"),
    )
    .action(async (disk: string, name: string, _options: unknown, command: Command) => {
      const diskName = checkName("disk", disk);
      const snapshotName = checkName("snapshot", name);
      await runOperation(command, {
        run: (operations) => operations.deleteSnapshot(diskName, snapshotName),
        print: (deleted) => printLine(describeDeleted(deleted)),
      });
    });
}

function describeDeleted(deleted: DeleteSnapshotResult): string {
  return (
    `deleted snapshot ${deleted.name} of ${deleted.disk} (LSN ${deleted.lsn}, created ${deleted.createdAt}): ` +
    `${deleted.lun === null ? "it held no LUN" : `LUN ${deleted.lun} released`}, ${deleted.entriesFreed} entries and ${formatBytes(deleted.bytesFreed)} freed`
  );
}
