/**
 * `snaplog diff DISK FROM TO`: the blocks that differ between two volumes, streamed in block
 * order; text ends with a summary line, --json is NDJSON (one DiffRun per line).
 */
import type { Command } from "commander";
import { checkName } from "../store/names.js";
import type { DiffRun } from "../store/operations/index.js";
import { parsePoint } from "../store/point-spec.js";
import { formatBytes } from "../util/parse.js";
import { runStream } from "./context.js";

const header = `${"BLOCK".padStart(12)}  ${"COUNT".padStart(8)}  ${"OFFSET".padStart(16)}  ${"LENGTH".padStart(12)}`;

export function registerDiff(program: Command): void {
  program
    .command("diff")
    .description("list the blocks written between two volumes of a disk (block numbers and byte offsets)")
    .argument("<disk>", "disk name")
    .argument("<from>", "a snapshot name, current, baseline, lsn:N or an ISO 8601 time with its zone (2026-11-25T10:00:00Z)")
    .argument("<to>", "the same kinds as FROM")
    .addHelpText(
      "after",
      [
        "",
        "Each line is a run of adjacent blocks that differ: first block, block count, byte offset",
        "and byte length; a summary (runs, blocks, bytes) follows. Points in time must be inside",
        "the history window. With --json the output is NDJSON (one run per line, streamed), no summary.",
        "",
        "Examples:",
        "  $ snaplog diff vm1 before-upgrade current",
        "  $ snaplog diff vm1 baseline lsn:1200",
        "  $ snaplog --json diff vm1 2026-11-25T10:00:00Z current",
      ].join("\n"),
    )
    .action(async (disk: string, from: string, to: string, _options: unknown, command: Command) => {
      // A typo is a usage error here, before the store is touched.
      parsePoint(from, "FROM");
      parsePoint(to, "TO");
      const request = { disk: checkName("disk", disk), from, to };
      const table = new DiffTable();
      await runStream(command, {
        items: (operations) => operations.diff(request),
        lines: (run) => table.rows(run),
        endLines: () => table.end(),
      });
    });
}

/** Text rows under a header printed with the first run (nothing is printed before the store answered), and the totals. */
class DiffTable {
  private runCount = 0;
  private blockCount = 0;
  private lengthBytes = 0;

  *rows(run: DiffRun): Generator<string> {
    if (this.runCount === 0) yield header;
    this.runCount++;
    this.blockCount += run.blockCount;
    this.lengthBytes += run.lengthBytes;
    yield `${String(run.block).padStart(12)}  ${String(run.blockCount).padStart(8)}  ${String(run.offsetBytes).padStart(16)}  ${String(run.lengthBytes).padStart(12)}`;
  }

  *end(): Generator<string> {
    yield `${this.runCount} runs, ${this.blockCount} blocks, ${formatBytes(this.lengthBytes)} (${this.lengthBytes} bytes) differ`;
  }
}
