/** `snaplog policy show | set`: the per-disk rules built so far (SPEC §4). */
import type { Command } from "commander";
import { checkName } from "../store/names.js";
import type { DiskPolicy, PolicyUpdate } from "../store/operations/index.js";
import { invalidArgument } from "../util/errors.js";
import { formatDuration, parseDuration } from "../util/parse.js";
import { runOperation } from "./context.js";
import { printFields, printLine } from "./output.js";

interface SetOptions {
  history?: string;
  autoCompact?: string;
  compactOnDelete?: string;
}

export function registerPolicy(program: Command): void {
  const policy = program.command("policy").description("show and change a disk's policy (history window, compaction)");
  registerPolicyShow(policy);
  registerPolicySet(policy);
}

function registerPolicyShow(policy: Command): void {
  policy
    .command("show")
    .description("show a disk's policy")
    .argument("<disk>", "disk name")
    .addHelpText("after", "\nExamples:\n  $ snaplog policy show vm1\n  $ snaplog --json policy show vm1")
    .action(async (disk: string, _options: unknown, command: Command) => {
      const diskName = checkName("disk", disk);
      await runOperation(command, {
        run: (operations) => operations.showPolicy(diskName),
        print: (shown) => printFields(policyFields(shown)),
      });
    });
}

function registerPolicySet(policy: Command): void {
  policy
    .command("set")
    .description("change some of a disk's policy; the others stay as they are")
    .argument("<disk>", "disk name")
    .option("--history <duration>", "how far back every write is kept: 0, 90s, 15m, 24h, 7d")
    .option("--auto-compact <on|off>", "compact in the background when the disk is idle or space is short")
    .option("--compact-on-delete <on|off>", "free a deleted snapshot's partition at once")
    .addHelpText(
      "after",
      [
        "",
        "At least one option is needed. A shorter --history frees older versions at the next",
        "compaction; snapshots are kept whatever the window.",
        "",
        "Examples:",
        "  $ snaplog policy set vm1 --history 24h",
        "  $ snaplog policy set vm1 --auto-compact off --compact-on-delete off",
      ].join("\n"),
    )
    .action(async (disk: string, options: SetOptions, command: Command) => {
      const update = policyUpdate(checkName("disk", disk), options);
      await runOperation(command, {
        run: (operations) => operations.setPolicy(update),
        print: (changed) => {
          printLine(`updated the policy of ${update.disk}:`);
          printFields(policyFields(changed));
        },
      });
    });
}

/** Every option is checked here, before the store is touched. */
function policyUpdate(disk: string, options: SetOptions): PolicyUpdate {
  const update: PolicyUpdate = { disk };
  if (options.history !== undefined) update.historySeconds = parseDuration(options.history, "--history");
  if (options.autoCompact !== undefined) update.autoCompact = parseSwitch(options.autoCompact, "--auto-compact");
  if (options.compactOnDelete !== undefined) update.compactOnDelete = parseSwitch(options.compactOnDelete, "--compact-on-delete");
  if (Object.keys(update).length === 1)
    throw invalidArgument("policy set needs at least one of --history, --auto-compact, --compact-on-delete");
  return update;
}

function parseSwitch(text: string, what: string): boolean {
  if (text === "on") return true;
  if (text === "off") return false;
  throw invalidArgument(`invalid ${what} "${text}": expected on or off`);
}

export function policyFields(policy: DiskPolicy): Array<[string, string]> {
  return [
    ["history", formatDuration(policy.historySeconds)],
    ["auto-compact", policy.autoCompact ? "on" : "off"],
    ["compact-on-delete", policy.compactOnDelete ? "on" : "off"],
  ];
}
