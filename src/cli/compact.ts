/**
 * `snaplog compact DISK [--snapshot NAME] [--into-baseline]`: compaction now, with a progress
 * bar on a terminal. In place frees entries no kept volume sees (nothing is copied); into the
 * baseline folds the oldest kept view into the baseline image and frees what it replaced.
 */
import type { Command } from "commander";
import type { CompactRequest, CompactResult } from "../store/operations.js";
import { invalidArgument } from "../util/errors.js";
import { formatBytes, parseName } from "../util/parse.js";
import { globalOptions, withOperations } from "./context.js";
import { printFields, printJson, printLine } from "./output.js";
import { startProgress } from "./progress.js";

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
      const { storePath, json } = globalOptions(command);
      const request = compactRequest(parseName(disk, "disk name"), options);
      const progress = startProgress({ label: `compact ${request.disk}`, unit: "steps", json });
      let result: CompactResult;
      try {
        result = await withOperations(storePath, (operations) => operations.compact(request, progress.onProgress));
      } finally {
        progress.stop();
      }
      if (json) {
        printJson(result);
        return;
      }
      printLine(result.mode === "in-place" ? `compacted ${result.disk} in place:` : `folded ${result.disk} into its baseline:`);
      printFields(compactFields(result));
    });
}

function compactRequest(disk: string, options: CompactOptions): CompactRequest {
  if (options.snapshot !== undefined && options.intoBaseline === true) {
    throw invalidArgument("--into-baseline folds the oldest kept view into the baseline; it takes no --snapshot");
  }
  const request: CompactRequest = { disk };
  if (options.snapshot !== undefined) request.snapshot = parseName(options.snapshot, "snapshot name");
  if (options.intoBaseline === true) request.intoBaseline = true;
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
  return fields;
}
