/**
 * `snaplog events [DISK]`: the event log, oldest first (SPEC §4.4): what the policies and the
 * server did and saw, with the reason. --follow keeps printing new events until interrupted;
 * --json prints NDJSON, one StoreEvent per line.
 */
import type { Command } from "commander";
import { checkName } from "../store/names.js";
import type { EventsRequest, StoreEvent } from "../store/operations/index.js";
import { runStream } from "./context.js";

interface EventsOptions {
  since?: string;
  follow?: boolean;
}

export function registerEvents(program: Command): void {
  program
    .command("events")
    .description("what the policies and the server did and saw (snapshots made and deleted, hooks run, space actions), oldest first")
    .argument("[disk]", "only this disk's events")
    .option("--since <time>", "only events at or after this time: ISO 8601 with its zone (Z or +01:00)")
    .option("--follow", "then keep printing new events as they happen (Ctrl-C ends)")
    .addHelpText(
      "after",
      [
        "",
        "Each line: time, event, disk, and what happened. With --json: NDJSON (one event per line).",
        "The log keeps the newest 100,000 events, across restarts. --follow needs a running server",
        "for events it records; on a store the CLI opened itself it shows the backlog only.",
        "",
        "Examples:",
        "  $ snaplog events",
        "  $ snaplog events vm1 --since 2026-11-25T00:00:00Z",
        "  $ snaplog --json events --follow | jq -c 'select(.type == \"snapshot-created\")'",
      ].join("\n"),
    )
    .action(async (disk: string | undefined, options: EventsOptions, command: Command) => {
      const request: EventsRequest = {
        disk: disk === undefined ? undefined : checkName("disk", disk),
        since: options.since,
        follow: options.follow === true,
      };
      await runStream(command, {
        items: (operations) => operations.readEvents(request),
        lines: (event) => [formatEvent(event)],
      });
    });
}

function formatEvent(event: StoreEvent): string {
  const where = event.disk === undefined ? "" : `  ${event.disk}`;
  return `${event.time}  ${event.type}${where}  ${event.message}`;
}
