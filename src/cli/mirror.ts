/**
 * `snaplog mirror status DISK` and `snaplog mirror resync DISK` (SPEC §6, docs/mirror.md): the
 * mirror leg's state, and a copy of its dirty regions from the log with a progress bar.
 */
import type { Command } from "commander";
import { checkName } from "../store/names.js";
import type { MirrorResyncResult, MirrorStatus } from "../store/operations/index.js";
import { formatBytes } from "../util/parse.js";
import { runOperation } from "./context.js";
import { printFields } from "./output.js";

export function registerMirror(program: Command): void {
  const mirror = program
    .command("mirror")
    .description("a disk's mirror leg: a plain image file or block device kept as a full copy of its current volume");
  mirror
    .command("status")
    .description("the mirror's path, state (syncing, in-sync, degraded with the reason) and bytes copied")
    .argument("<disk>", "disk name")
    .action(async (disk: string, _options: unknown, command: Command) => {
      const name = checkName("disk", disk);
      await runOperation(command, { run: (operations) => operations.mirrorStatus(name), print: printStatus });
    });
  mirror
    .command("resync")
    .description("copy the mirror's dirty regions from the log (only bytes that differ are written), then it is in-sync")
    .argument("<disk>", "disk name")
    .addHelpText(
      "after",
      ["", "Examples:", "  $ snaplog policy set vm1 --mirror /mnt/backup/vm1.img", "  $ snaplog mirror resync vm1"].join("\n"),
    )
    .action(async (disk: string, _options: unknown, command: Command) => {
      const name = checkName("disk", disk);
      await runOperation(command, {
        run: (operations, onProgress) => operations.resyncMirror(name, onProgress),
        print: printResync,
        progress: { label: `mirror resync ${name}`, unit: "steps" },
      });
    });
}

function printStatus(status: MirrorStatus): void {
  printFields([
    ["disk", status.disk],
    ["path", status.path],
    ["state", status.reason === undefined ? status.state : `${status.state}: ${status.reason}`],
    ["bytes copied", formatBytes(status.bytesCopied)],
    ["dirty", `${formatBytes(status.dirtyBytes)} (regions of ${formatBytes(status.regionBytes)})`],
  ]);
}

function printResync(result: MirrorResyncResult): void {
  printFields([
    ["disk", result.disk],
    ["path", result.path],
    ["state", result.state],
    ["bytes copied", formatBytes(result.bytesCopied)],
    ["regions checked", String(result.regionsChecked)],
  ]);
}
