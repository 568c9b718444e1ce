/** `snaplog status`: health, space and what is being served. */
import type { Command } from "commander";
import { formatBytes } from "../util/parse.js";
import type { StoreStatus } from "../store/operations/index.js";
import { runOperation } from "./context.js";
import { diskColumns } from "./disk.js";
import { printFields, printLine, printTable } from "./output.js";

export function registerStatus(program: Command): void {
  program
    .command("status")
    .description("health, space and endpoints of the store (through the running server if there is one)")
    .action(async (_options: unknown, command: Command) => {
      await runOperation(command, { run: (operations) => operations.status(), print: printStatus });
    });
}

function printStatus(status: StoreStatus): void {
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
}
