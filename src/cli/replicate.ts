/**
 * `snaplog replicate DISK --to snaplog://HOST:PORT/DISK --token-file F [--mode continuous|compacted] [--interval D]`,
 * `snaplog replicate --stop DISK`, `snaplog replicate --list`, and `snaplog disk promote DISK` (SPEC §5.4).
 */
import { promises as fs } from "node:fs";
import type { Command } from "commander";
import { checkName } from "../store/names.js";
import type { RelationInfo } from "../store/operations/index.js";
import { fromSystemError, invalidArgument } from "../util/errors.js";
import { formatBytes, parseDuration } from "../util/parse.js";
import { runOperation } from "./context.js";
import { printLine, printTable, type Column } from "./output.js";

export const relationColumns: Column<RelationInfo>[] = [
  { header: "DISK", value: (relation) => relation.disk },
  { header: "TO", value: (relation) => relation.to },
  { header: "MODE", value: (relation) => (relation.mode === "compacted" ? `compacted/${relation.intervalMs / 1000}s` : "continuous") },
  { header: "STATE", value: (relation) => (relation.reason === null ? relation.state : `${relation.state}: ${relation.reason}`) },
  { header: "ACKED LSN", value: (relation) => (relation.ackedLsn === null ? "-" : String(relation.ackedLsn)), alignRight: true },
  { header: "LAG", value: (relation) => `${relation.lagSeconds.toFixed(1)}s ${formatBytes(relation.lagBytes)}`, alignRight: true },
  { header: "SHIPPED", value: (relation) => formatBytes(relation.bytesShipped), alignRight: true },
  { header: "WRITTEN", value: (relation) => formatBytes(relation.bytesWritten), alignRight: true },
];

interface ReplicateOptions {
  to?: string;
  tokenFile?: string;
  mode: string;
  interval?: string;
  maxLoad?: string;
  stop?: boolean;
  list?: boolean;
}

export function registerReplicate(program: Command): void {
  program
    .command("replicate")
    .description("remote copy of a disk to another appliance, run by this store's server")
    .argument("[disk]", "disk name")
    .option(
      "--to <url>",
      "snaplog://HOST:PORT/DISK: the receiver (its `serve --replication` or `--api` address) and the replica's name there",
    )
    .option("--token-file <file>", "a copy of the receiver's STORE/api.token (or set SNAPLOG_REPLICATION_TOKEN)")
    .option(
      "--mode <mode>",
      "continuous (every write, in order) or compacted (the newest version of each block, every interval)",
      "continuous",
    )
    .option("--interval <duration>", "compacted: time between shipments (default 60s)")
    .option(
      "--max-load <percent>",
      "continuous: the most of this server's event-loop time shipping may take while hosts write to the disk (1-100, default 7; " +
        "100: it never yields to them, the lag stays lowest, their writes slow down)",
    )
    .option("--stop", "stop replicating DISK (the replica stays as it is)")
    .option("--list", "the relations, with state, acknowledged LSN, lag and bytes")
    .addHelpText(
      "after",
      [
        "",
        "The receiver is contacted at once: a wrong token, an unreachable host or a name taken there",
        "is refused now. The server of this store runs the relation from then on, across restarts",
        "and network loss; `snaplog status` and /metrics show its lag. Failover: on the receiver,",
        "`snaplog disk promote DISK`.",
        "",
        "Examples:",
        "  $ snaplog replicate vm1 --to snaplog://dr-site:9090/vm1 --token-file dr.token",
        "  $ snaplog replicate vm1 --to snaplog://dr-site:9090/vm1 --token-file dr.token --mode compacted --interval 5m",
        "  $ snaplog replicate vm1 --to snaplog://dr-site:9090/vm1 --token-file dr.token --max-load 100   # lowest lag",
        "  $ snaplog replicate --list",
      ].join("\n"),
    )
    .action(async (disk: string | undefined, options: ReplicateOptions, command: Command) => {
      if (options.list === true) {
        await runOperation(command, {
          run: (operations) => operations.listRelations(),
          print: (relations) => printTable(relations, relationColumns, "no replication relations"),
        });
        return;
      }
      if (disk === undefined) throw invalidArgument("name the disk (or --list)");
      const name = checkName("disk", disk);
      if (options.stop === true) {
        await runOperation(command, {
          run: (operations) => operations.stopReplication(name),
          print: () => printLine(`replication of disk ${name} stopped`),
        });
        return;
      }
      if (options.to === undefined) throw invalidArgument("--to snaplog://HOST:PORT/DISK is needed");
      if (options.mode !== "continuous" && options.mode !== "compacted")
        throw invalidArgument(`--mode must be continuous or compacted, not ${options.mode}`);
      if (options.interval !== undefined && options.mode !== "compacted") throw invalidArgument("--interval goes with --mode compacted");
      if (options.maxLoad !== undefined && options.mode !== "continuous") throw invalidArgument("--max-load goes with --mode continuous");
      const token = await readToken(options.tokenFile);
      const request = {
        disk: name,
        to: options.to,
        token,
        mode: options.mode,
        intervalMs: options.interval === undefined ? undefined : parseDuration(options.interval, "--interval") * 1000,
        maxLoadPercent: options.maxLoad === undefined ? undefined : parsePercent(options.maxLoad),
      } as const;
      await runOperation(command, {
        run: (operations) => operations.replicate(request),
        print: (relation) => printLine(`disk ${relation.disk} replicates to ${relation.to} (${relation.mode}); the server runs it`),
      });
    });
}

function parsePercent(text: string): number {
  const value = Number(text.replace(/%$/, ""));
  if (!Number.isInteger(value) || value < 1 || value > 100)
    throw invalidArgument(`--max-load must be a whole percent from 1 to 100, not ${text}`);
  return value;
}

async function readToken(file: string | undefined): Promise<string> {
  if (file === undefined) {
    const fromEnvironment = process.env.SNAPLOG_REPLICATION_TOKEN;
    if (fromEnvironment === undefined || fromEnvironment.trim() === "")
      throw invalidArgument("--token-file F (a copy of the receiver's STORE/api.token) or SNAPLOG_REPLICATION_TOKEN is needed");
    return fromEnvironment.trim();
  }
  try {
    return (await fs.readFile(file, "utf8")).trim();
  } catch (error) {
    throw fromSystemError(error, { path: file });
  }
}

export function registerDiskPromote(disk: Command): void {
  disk
    .command("promote")
    .description("failover: make a replica read-write; its relation ends (the sender learns at its next contact)")
    .argument("<disk>", "the replica")
    .action(async (name: string, _options: unknown, command: Command) => {
      checkName("disk", name);
      await runOperation(command, {
        run: (operations) => operations.promoteDisk(name),
        print: (result) => printLine(`disk ${result.disk} promoted at ${result.promotedAt}: read-write`),
      });
    });
}
