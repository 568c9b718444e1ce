/** `snaplog status`: health, space and what is being served. */
import type { Command } from "commander";
import { formatBytes } from "../util/parse.js";
import { ApiClient } from "../api/client.js";
import { applianceStatus, NOTHING_SERVED, type ApplianceStatus } from "../api/appliance-status.js";
import type { Operations } from "../store/operations/index.js";
import { runOperation } from "./context.js";
import { diskColumns } from "./disk.js";
import { relationColumns } from "./replicate.js";
import { printFields, printLine, printTable } from "./output.js";

export function registerStatus(program: Command): void {
  program
    .command("status")
    .description("health, space and endpoints of the store (through the running server if there is one)")
    .action(async (_options: unknown, command: Command) => {
      await runOperation(command, { run: statusOf, print: printStatus });
    });
}

/** Through a running server, its answer says what it serves; a store the CLI opened itself serves nothing. */
async function statusOf(operations: Operations): Promise<ApplianceStatus> {
  return operations instanceof ApiClient ? operations.status() : applianceStatus(await operations.status(), NOTHING_SERVED);
}

function printStatus(status: ApplianceStatus): void {
  printFields([
    ["store", status.path],
    ["version", status.version],
    [
      "mode",
      status.mode === "server" ? `server (pid ${status.pid}, up ${Math.round(status.uptimeSeconds)}s)` : "direct (no server running)",
    ],
    ["disks", String(status.diskCount)],
    ["snapshots", String(status.snapshotCount)],
    ["used", formatBytes(status.usedBytes)],
    ["free", formatBytes(status.freeBytes)],
    ["checksum errors", String(status.checksumErrors)],
    ["nbd", status.nbd.length === 0 ? "-" : status.nbd.join(", ")],
  ]);
  if (status.disks.length > 0) {
    printLine("");
    printTable(status.disks, diskColumns, "");
  }
  for (const mirror of status.mirrors) {
    printLine(`mirror of ${mirror.disk}: ${mirror.state}${mirror.reason === undefined ? "" : ` (${mirror.reason})`}, ${mirror.path}`);
  }
  if (status.replication.length > 0) {
    printLine("");
    printTable(status.replication, relationColumns, "");
  }
}
