/**
 * `snaplog compact DISK [--snapshot NAME] [--into-baseline]`: compaction now, with a progress
 * bar on a terminal. In place frees entries no kept volume sees (nothing is copied); into the
 * baseline folds the oldest kept view into the baseline image and frees what it replaced.
 */
import type { Command } from "commander";
import { checkName } from "../store/names.js";
import { checkCompactRequest, type CompactRequest, type CompactResult } from "../store/operations/index.js";
import { formatBytes } from "../util/parse.js";
import { runOperation } from "./context.js";
import { formatBlockRanges, printFields, printLine } from "./output.js";

interface CompactOptions {
  snapshot?: string;
  intoBaseline?: boolean;
}

export function registerCompact(program: Command): void {
  program
    .command("compact")
    .description("free log entries no kept volume needs, now (in place, or folded into the baseline)")
    .argument("<disk>", "disk name")
    .option("--snapshot <name>", "only this snapshot's partition")
    .option("--into-baseline", "fold the oldest kept view into the baseline image (copies those blocks)")
    .addHelpText(
      "after",
      [
        "",
        "Kept volumes are the snapshots, the history window, and point-in-time exports attached",
        "now; compaction never changes what any of them reads. A progress bar shows on a terminal.",
        "",
        "Examples:",
        "  $ snaplog compact vm1",
        "  $ snaplog compact vm1 --snapshot before-upgrade",
        "  $ snaplog --json compact vm1 --into-baseline",
      ].join("\n"),
    )
    .action(async (disk: string, options: CompactOptions, command: Command) => {
      const request = compactRequest(checkName("disk", disk), options);
      await runOperation(command, {
        run: (operations, onProgress) => operations.compact(request, onProgress),
        print: printCompact,
        progress: { label: `compact ${request.disk}`, unit: "steps" },
      });
    });
}

function printCompact(result: CompactResult): void {
  printLine(result.mode === "in-place" ? `compacted ${result.disk} in place:` : `folded ${result.disk} into its baseline:`);
  printFields(compactFields(result));
}

function compactRequest(disk: string, options: CompactOptions): CompactRequest {
  const request: CompactRequest = { disk };
  if (options.snapshot !== undefined) request.snapshot = checkName("snapshot", options.snapshot);
  if (options.intoBaseline === true) request.intoBaseline = true;
  checkCompactRequest(request);
  return request;
}

function compactFields(result: CompactResult): Array<[string, string]> {
  const fields: Array<[string, string]> = [
    ["entries freed", String(result.entriesFreed)],
    ["bytes freed", formatBytes(result.bytesFreed)],
    ["bytes moved", formatBytes(result.bytesMoved)],
    ["segments released", String(result.segmentsReleased)],
    ["duration", `${Math.round(result.durationMs)} ms`],
  ];
  if (result.mode === "into-baseline") fields.push(["fold LSN", result.lsnFold === 0 ? "0 (nothing to fold)" : String(result.lsnFold)]);
  if (result.corruptBlocks.length > 0) {
    fields.push([
      "damaged blocks",
      `${formatBlockRanges(result.corruptBlocks)} (data failed its checksum: left in the log, the baseline answers EIO there; see snaplog scrub)`,
    ]);
  }
  return fields;
}
