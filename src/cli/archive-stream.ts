/**
 * `snaplog export DISK` and `snaplog import DISK` (SPEC §3.2, §5.1, §5.2): archive streams to
 * a file or stdout, and from a file or stdin.
 */
import { createReadStream, promises as fs } from "node:fs";
import type { Command } from "commander";
import { CODEC_NAMES, parseCodec } from "../stream/index.js";
import { checkName } from "../store/names.js";
import type { ExportRequest, ExportResult, ImportResult } from "../store/operations/index.js";
import { fromSystemError, invalidArgument } from "../util/errors.js";
import { writeNewFile } from "../util/new-file.js";
import { writeAll } from "../util/write-all.js";
import { formatBytes } from "../util/parse.js";
import { globalOptions, withOperations } from "./context.js";
import { startProgress } from "./progress.js";

interface ExportOptions {
  to?: string;
  from?: string;
  compact?: boolean;
  order: string;
  compression: string;
  output?: string;
}

export function registerArchiveStreams(program: Command): void {
  program
    .command("export")
    .description("write an archive stream of a volume of the disk to a file or stdout")
    .argument("<disk>", "disk name")
    .option("--to <volume>", "the volume: a snapshot, lsn:N or a time (default: the current volume, pinned when the export starts)")
    .option("--from <snapshot>", "a snapshot the receiver has: only what changed after it (incremental)")
    .option("--compact", "only the newest version of each block per partition (no points in time between snapshots)")
    .option("--order <order>", "time (log order) or block (block order within each partition)", "time")
    .option("--compression <codec>", `frame compression: ${CODEC_NAMES.join(", ")}`, "zstd")
    .option("-o, --output <file>", "write to this new file (made complete or not at all) instead of stdout")
    .addHelpText(
      "after",
      [
        "",
        "The summary (LSNs pinned, counts, bytes, SHA-256) goes to stderr, or stdout with -o;",
        "--json prints it as one object. A progress bar shows on a terminal.",
        "",
        "Examples:",
        "  $ snaplog export vm1 --to nightly-1 -o vm1-full.slar",
        "  $ snaplog export vm1 --from nightly-1 --to nightly-2 --compact -o vm1-1-2.slar",
        "  $ snaplog export vm1 | ssh backup snaplog import vm1",
      ].join("\n"),
    )
    .action(async (disk: string, options: ExportOptions, command: Command) => {
      const request = exportRequest(checkName("disk", disk), options);
      const { storePath, json } = globalOptions(command);
      if (options.output === undefined && process.stdout.isTTY === true) {
        throw invalidArgument("refusing to write a binary stream to a terminal", { hint: "give -o FILE or redirect stdout" });
      }
      const progress = startProgress({ label: `export ${disk}`, unit: "steps" }, json);
      let result: ExportResult;
      try {
        result = await withOperations(storePath, (operations) =>
          options.output === undefined
            ? operations.exportStream(request, (chunk) => writeTo(process.stdout, chunk), progress.onProgress)
            : exportToFile(options.output, (sink) => operations.exportStream(request, sink, progress.onProgress)),
        );
      } finally {
        progress.stop();
      }
      const out = options.output === undefined ? process.stderr : process.stdout;
      out.write(json ? `${JSON.stringify(result)}\n` : `${describeExport(result)}\n`);
    });

  program
    .command("import")
    .description("apply an archive stream: a full one makes the disk, an incremental one extends it")
    .argument("<disk>", "disk name")
    .option("-i, --input <file>", "read the stream from this file instead of stdin")
    .option("--force", "apply onto a disk written since the stream's base (the state replaced is kept as snapshot before-import-…)")
    .addHelpText(
      "after",
      [
        "",
        "Nothing changes until the whole stream is received and its trailer verified: a",
        "truncated, corrupt, reordered or wrong-disk stream is refused whole.",
        "",
        "Examples:",
        "  $ snaplog import vm1-copy -i vm1-full.slar",
        "  $ snaplog import vm1-copy -i vm1-1-2.slar",
      ].join("\n"),
    )
    .action(async (disk: string, options: { input?: string; force?: boolean }, command: Command) => {
      const name = checkName("disk", disk);
      const { storePath, json } = globalOptions(command);
      if (options.input === undefined && process.stdin.isTTY === true) {
        throw invalidArgument("no stream on stdin (it is a terminal)", { hint: "give -i FILE or pipe a stream in" });
      }
      if (options.input !== undefined) await checkReadable(options.input);
      const source = options.input === undefined ? process.stdin : createReadStream(options.input, { highWaterMark: 1024 * 1024 });
      const result = await withOperations(storePath, (operations) => operations.importStream({ disk: name, force: options.force }, source));
      process.stdout.write(json ? `${JSON.stringify(result)}\n` : `${describeImport(result)}\n`);
    });
}

function exportRequest(disk: string, options: ExportOptions): ExportRequest {
  if (options.order !== "time" && options.order !== "block")
    throw invalidArgument(`--order must be time or block, not ${JSON.stringify(options.order)}`);
  return {
    disk,
    to: options.to,
    from: options.from,
    compact: options.compact === true,
    order: options.order,
    codec: parseCodec(options.compression),
  };
}

function writeTo(stream: NodeJS.WritableStream, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(chunk, (error) => (error === undefined || error === null ? resolve() : reject(fromSystemError(error, {}))));
  });
}

/** Written whole or not at all (util/new-file.ts): a file named FILE is always a complete stream. */
function exportToFile(target: string, run: (sink: (chunk: Buffer) => Promise<void>) => Promise<ExportResult>): Promise<ExportResult> {
  let position = 0;
  return writeNewFile(target, "export", (handle) =>
    run(async (chunk) => {
      position = await writeAll(handle, chunk, position);
    }),
  );
}

async function checkReadable(file: string): Promise<void> {
  try {
    await fs.access(file);
  } catch (error) {
    throw fromSystemError(error, { path: file });
  }
}

function describeExport(result: ExportResult): string {
  const range = result.from === null ? `full up to ${result.to.name}` : `from ${result.from.name} to ${result.to.name}`;
  const shape = `${result.compacted ? "compacted" : "every entry"}, ${result.order} order`;
  return `exported ${result.disk} ${range} (LSN ${result.lsnFirst}..${result.lsnLast}; ${shape}): ${result.blockCount} blocks in ${result.runCount} runs, ${result.cutCount} snapshots, ${formatBytes(result.bytes)}, sha256 ${result.sha256}`;
}

function describeImport(result: ImportResult): string {
  const what = result.created ? `created disk ${result.disk}` : `extended disk ${result.disk}`;
  const before = result.beforeImport === null ? "" : `; the state replaced is snapshot ${result.beforeImport}`;
  return `${what} from ${result.kind === "full" ? "a full" : "an incremental"}${result.compacted ? " compacted" : ""} stream: ${result.blockCount} blocks, snapshots ${result.snapshots.join(", ") || "none"}${before}`;
}
