/**
 * `snaplog scrub [DISK]`: reads every live log entry of the disk (default: every disk) and
 * checks its CRC32C, with a progress bar on a terminal (SPEC §2 "Integrity"). Prints per disk
 * what was checked and where any damage lies, then a summary. Only damage in the current volume of
 * a disk with an in-sync mirror is repaired (from the mirror), and listed as such.
 *
 * Damage is what a scrub is for finding, so it is not an error of the command: the report
 * goes to stdout as usual and the command exits with exitCodeDamageFound (9), apart from
 * the error codes of exit-code.ts, which mean the scrub itself could not run.
 */
import type { Command } from "commander";
import { checkName } from "../store/names.js";
import type { ScrubDiskResult, ScrubRequest, ScrubResult } from "../store/operations/index.js";
import { formatBytes } from "../util/parse.js";
import { runOperation } from "./context.js";
import { exitCodeDamageFound, ExitStatus } from "./exit-code.js";
import { formatBlockRanges, formatTable, plural, printLine, type Column } from "./output.js";

export function registerScrub(program: Command): void {
  program
    .command("scrub")
    .description("check every stored block against its CRC32C and report per disk")
    .argument("[disk]", "only this disk (default: every disk of the store)")
    .addHelpText(
      "after",
      [
        "",
        "Reads every live log entry and checks its checksum; the baseline image has none, but",
        "baseline blocks a fold could not write (their data was damaged) are reported too.",
        "Damage in the current volume of a disk whose mirror is in sync is repaired from the",
        "mirror and listed as repaired; nothing else is repaired. A progress bar shows on a terminal.",
        "",
        "Exit status:",
        `  0   every disk checked, no damage`,
        `  ${exitCodeDamageFound}   damage found (the report names each damaged block), or a disk is offline`,
        "  other non-zero: the scrub itself failed (see docs/errors.md)",
        "",
        "Examples:",
        "  $ snaplog scrub",
        "  $ snaplog scrub vm1",
        "  $ snaplog --json scrub",
      ].join("\n"),
    )
    .action(async (disk: string | undefined, _options: unknown, command: Command) => {
      const request: ScrubRequest = disk === undefined ? {} : { disk: checkName("disk", disk) };
      const result = await runOperation(command, {
        run: (operations, onProgress) => operations.scrub(request, onProgress),
        print: printScrubReport,
        progress: { label: request.disk === undefined ? "scrub" : `scrub ${request.disk}`, unit: "steps" },
      });
      if (!result.ok) throw new ExitStatus(exitCodeDamageFound);
    });
}

function printScrubReport(result: ScrubResult): void {
  for (const disk of result.disks) printLine(formatDiskReport(disk));
  printLine(formatSummary(result));
}

/** "disk vm1: 12,345 entries (48.2 MiB) checked, OK", or the same with the damage below it. */
function formatDiskReport(disk: ScrubDiskResult): string {
  if (disk.offlineReason !== undefined) return `disk ${disk.disk}: OFFLINE, not checked: ${disk.offlineReason}`;
  const checked = `disk ${disk.disk}: ${formatEntries(disk.entriesChecked, disk.bytesChecked)} checked`;
  const repaired =
    disk.repaired.length === 0
      ? []
      : [
          `  repaired from the mirror (${plural(disk.repaired.length, "block", "blocks")} of the current volume written again into the log):`,
          indent(formatTable(disk.repaired, damageColumns)),
        ];
  if (disk.ok) return [`${checked}, OK`, ...repaired].join("\n");
  const lines = [`${checked}, DAMAGED: ${damageCounts(disk).join(", ")}`, ...repaired];
  if (disk.corrupt.length > 0) lines.push(indent(formatTable(disk.corrupt, damageColumns)));
  if (disk.baselineUnknownBlocks.length > 0) {
    lines.push(
      `  baseline blocks unknown (a fold met damaged data; the baseline answers EIO there): ${formatBlockRanges(disk.baselineUnknownBlocks)}`,
    );
  }
  return lines.join("\n");
}

const damageColumns: ReadonlyArray<Column<ScrubDiskResult["corrupt"][number]>> = [
  { header: "block", value: (damage) => String(damage.block), alignRight: true },
  { header: "byte offset", value: (damage) => String(damage.offsetBytes), alignRight: true },
  { header: "LSN", value: (damage) => String(damage.lsn), alignRight: true },
  { header: "file", value: (damage) => damage.file },
  { header: "file offset", value: (damage) => String(damage.fileOffsetBytes), alignRight: true },
  { header: "reason", value: (damage) => damage.reason },
];

function damageCounts(disk: ScrubDiskResult): string[] {
  const counts: string[] = [];
  if (disk.corrupt.length > 0) counts.push(plural(disk.corrupt.length, "damaged entry", "damaged entries"));
  if (disk.baselineUnknownBlocks.length > 0)
    counts.push(plural(disk.baselineUnknownBlocks.length, "unknown baseline block", "unknown baseline blocks"));
  return counts;
}

/** "scrub: 2 disks, 12,400 entries (48.4 MiB) checked in 1.2 s, all OK" or "..., damage on vm2". */
function formatSummary(result: ScrubResult): string {
  if (result.disks.length === 0) return "scrub: no disks";
  const entries = result.disks.reduce((sum, disk) => sum + disk.entriesChecked, 0);
  const bytes = result.disks.reduce((sum, disk) => sum + disk.bytesChecked, 0);
  const checked = `scrub: ${plural(result.disks.length, "disk", "disks")}, ${formatEntries(entries, bytes)} checked in ${formatMs(result.durationMs)}`;
  if (result.ok) return `${checked}, all OK`;
  const damaged = result.disks.filter((disk) => !disk.ok).map((disk) => disk.disk);
  return `${checked}, damage on ${damaged.join(", ")}; reads of damaged data answer EIO, nothing was repaired`;
}

function formatEntries(entryCount: number, bytes: number): string {
  return `${plural(entryCount, "entry", "entries")} (${formatBytes(bytes)})`;
}

function formatMs(durationMs: number): string {
  return durationMs < 1000 ? `${Math.round(durationMs)} ms` : `${(durationMs / 1000).toFixed(1)} s`;
}

function indent(text: string): string {
  return text
    .split("\n")
    .map((line) => `  ${line}`)
    .join("\n");
}
