/** `snaplog snapshot create | list`. */
import type { Command } from "commander";
import type { CreateSnapshotRequest } from "../store/operations.js";
import { parseCount, parseName } from "../util/parse.js";
import { globalOptions, withOperations } from "./context.js";
import { snapshotColumns } from "./disk.js";
import { printJson, printLine, printTable } from "./output.js";

export function registerSnapshot(program: Command): void {
  const snapshot = program.command("snapshot").description("create and list snapshots");

  snapshot
    .command("create")
    .description("cut the disk's log: the current partition becomes a read-only snapshot volume (O(1), copies nothing)")
    .argument("<disk>", "disk name")
    .option("--name <name>", "snapshot name (default: from the time, e.g. snap-20261125T100000Z)")
    .option("--lun <n>", "LUN for the snapshot volume (default: the disk's LUN policy)")
    .addHelpText("after", "\nExamples:\n  $ snaplog snapshot create vm1\n  $ snaplog snapshot create vm1 --name before-upgrade --lun 12\n\nAttach it read-only as the NBD export DISK@NAME, or lun:N.")
    .action(async (disk: string, options: { name?: string; lun?: string }, command: Command) => {
      const { storePath, json } = globalOptions(command);
      const request: CreateSnapshotRequest = { disk: parseName(disk, "disk name") };
      if (options.name !== undefined) request.name = parseName(options.name, "snapshot name");
      if (options.lun !== undefined) request.lun = parseCount(options.lun, "LUN");
      const created = await withOperations(storePath, (operations) => operations.createSnapshot(request));
      if (json) printJson(created);
      else printLine(`created snapshot ${created.name} of ${created.disk}: LUN ${created.lun}, LSN ${created.lsn}, at ${created.createdAt}`);
    });

  snapshot
    .command("list")
    .description("list a disk's snapshots, oldest first")
    .argument("<disk>", "disk name")
    .action(async (disk: string, _options: unknown, command: Command) => {
      const { storePath, json } = globalOptions(command);
      const diskName = parseName(disk, "disk name");
      const snapshots = await withOperations(storePath, (operations) => operations.listSnapshots(diskName));
      if (json) printJson(snapshots);
      else printTable(snapshots, snapshotColumns, `no snapshots of ${diskName}`);
    });
}
