/**
 * `snaplog log DISK`: the log in time order ("read entry"), streamed in constant memory.
 * Text mode prints one line per row (and with --data its bytes as a hexdump); --json prints
 * NDJSON, one LogEntry per line, because a log can be far larger than one JSON document
 * should be.
 */
import type { Command } from "commander";
import { checkName } from "../store/names.js";
import type { LogEntry, LogRequest } from "../store/operations/index.js";
import { parsePoint } from "../store/point-spec.js";
import { runStream } from "./context.js";
import { hexdumpLines } from "./hexdump.js";

interface LogOptions {
  since?: string;
  until?: string;
  snapshot?: string;
  data?: boolean;
}

export function registerLog(program: Command): void {
  program
    .command("log")
    .description("list a disk's log in time order: runs of writes, zeroes and trims, and snapshot cuts")
    .argument("<disk>", "disk name")
    .option("--since <T>", "from this point on, inclusive: lsn:N or an ISO 8601 time with its zone (Z or +01:00)")
    .option("--until <T>", "up to this point, inclusive: lsn:N or an ISO 8601 time with its zone (Z or +01:00)")
    .option("--snapshot <name>", "only this snapshot's partition (the entries since the snapshot before it) and its cut")
    .option("--data", 'also print each row\'s bytes (text: a hexdump; --json: base64 in "data")')
    .addHelpText(
      "after",
      [
        "",
        "Each line: LSN range, time, kind (write, zero, trim, snapshot), first block and block",
        "count, byte offset and length; a snapshot row shows its name and LUN. Only entries that",
        "still exist are listed: compaction removes those no kept volume needs.",
        "",
        "With --json the output is NDJSON (one JSON object per line, streamed), not one document.",
        "",
        "Examples:",
        "  $ snaplog log vm1",
        "  $ snaplog log vm1 --since 2026-11-25T10:00:00Z --until lsn:5000",
        "  $ snaplog log vm1 --snapshot before-upgrade --data | less",
        "  $ snaplog --json log vm1 | jq -c 'select(.kind == \"write\")'",
      ].join("\n"),
    )
    .action(async (disk: string, options: LogOptions, command: Command) => {
      const request = logRequest(checkName("disk", disk), options);
      await runStream(command, {
        items: (operations) => operations.readLog(request),
        lines: (entry) => formatLogEntry(entry, options.data === true),
      });
    });
}

function logRequest(disk: string, options: LogOptions): LogRequest {
  const request: LogRequest = { disk };
  // A typo is a usage error here, before the store is touched.
  if (options.since !== undefined) {
    parsePoint(options.since, "--since", "point");
    request.since = options.since;
  }
  if (options.until !== undefined) {
    parsePoint(options.until, "--until", "point");
    request.until = options.until;
  }
  if (options.snapshot !== undefined) request.snapshot = checkName("snapshot", options.snapshot);
  if (options.data === true) request.data = true;
  return request;
}

/** One row as text, then its hexdump when asked for. */
function* formatLogEntry(entry: LogEntry, withData: boolean): Generator<string> {
  yield formatLogRow(entry);
  if (!withData || entry.kind === "snapshot") return;
  if (entry.data === undefined) {
    yield "  (data freed by compaction while the log was read)";
    return;
  }
  yield* hexdumpLines(Buffer.from(entry.data, "base64"), entry.offsetBytes);
}

/** "lsn 12-15  2026-11-25T10:00:00.000Z  write     block 8 +4  offset 32768 length 16384". */
function formatLogRow(entry: LogEntry): string {
  const lsn = entry.lsnFirst === entry.lsnLast ? `lsn ${entry.lsnFirst}` : `lsn ${entry.lsnFirst}-${entry.lsnLast}`;
  const head = `${lsn.padEnd(16)}  ${entry.time}  ${entry.kind.padEnd(8)}`;
  if (entry.kind === "snapshot") return `${head}  ${entry.snapshot?.name ?? "?"} (LUN ${entry.snapshot?.lun ?? "?"})`;
  return `${head}  block ${entry.block} +${entry.blockCount}  offset ${entry.offsetBytes} length ${entry.lengthBytes}`;
}
