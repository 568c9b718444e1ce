/** `snaplog policy show | set | prune`: a disk's rules (SPEC §4). */
import * as path from "node:path";
import type { Command } from "commander";
import { checkName } from "../store/names.js";
import {
  POLICY_EVENTS,
  type DiskPolicy,
  type EventHook,
  type PolicyEvent,
  type PolicyUpdate,
  type SpaceAction,
  type LunPolicy,
} from "../store/operations/index.js";
import { invalidArgument } from "../util/errors.js";
import { formatBytes, formatDuration, parseCount, parseDuration, parseSize } from "../util/parse.js";
import { runOperation } from "./context.js";
import { printFields, printLine } from "./output.js";

interface SetOptions {
  history?: string;
  historyMax?: string;
  autoCompact?: string;
  compactOnDelete?: string;
  mergeOldestIntoBaseline?: string;
  snapshotEvery?: string;
  snapshotCron?: string;
  timezone?: string;
  keepLast?: string;
  keepHourly?: string;
  keepDaily?: string;
  keepWeekly?: string;
  keepMonthly?: string;
  spaceHigh?: string;
  spaceAction?: string;
  spaceVault?: string;
  replicationLagHigh?: string;
  on: string[];
  off: string[];
  lunPolicy?: string;
  lun?: string;
  mirror?: string;
}

export function registerPolicy(program: Command): void {
  const policy = program
    .command("policy")
    .description("show and change a disk's policy: schedules, retention, space, events, LUNs, history");
  registerPolicyShow(policy);
  registerPolicySet(policy);
  registerPolicyPrune(policy);
}

function registerPolicyShow(policy: Command): void {
  policy
    .command("show")
    .description("show a disk's policy, its next scheduled snapshot and what retention would delete now")
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

const collect = (value: string, previous: string[]) => [...previous, value];

function registerPolicySet(policy: Command): void {
  policy
    .command("set")
    .description("change some of a disk's policy; the others stay as they are (a change that cannot hold is refused whole)")
    .argument("<disk>", "disk name")
    .option("--history <duration>", "how far back every write is kept: 0, 90s, 15m, 24h, 7d")
    .option("--history-max <size|off>", "cap the log bytes kept only for the window (the window shrinks, snapshots stay)")
    .option("--auto-compact <on|off>", "compact in the background when the disk is idle or space is short")
    .option("--compact-on-delete <on|off>", "free a deleted snapshot's partition at once")
    .option("--merge-oldest-into-baseline <on|off>", "deleting the oldest snapshot folds it into the baseline")
    .option("--snapshot-every <duration|off>", "a scheduled snapshot every interval (at multiples of it since the epoch, UTC)")
    .option("--snapshot-cron <expr|off>", 'a scheduled snapshot at each time of a cron expression, e.g. "0 2 * * *"')
    .option("--timezone <zone>", "zone of --snapshot-cron and of retention's hours and days (default: the server's)")
    .option("--keep-last <n>", "retention: keep the newest n scheduled snapshots")
    .option("--keep-hourly <n>", "retention: keep the newest of each of the n most recent hours that have one")
    .option("--keep-daily <n>", "retention: likewise per day")
    .option("--keep-weekly <n>", "retention: likewise per ISO week")
    .option("--keep-monthly <n>", "retention: likewise per month")
    .option("--space-high <percent|off>", "when the store's file system passes this use (df), run --space-action")
    .option("--space-action <action>", "compact, delete-oldest or archive-then-delete")
    .option("--space-vault <name>", "the vault of archive-then-delete")
    .option("--replication-lag-high <duration|off>", "record replication-lag when the disk's replica lags more than this (e.g. 30s)")
    .option("--on <event=action>", "run an action on an event (repeatable): events " + POLICY_EVENTS.join(", "), collect, [])
    .option("--off <event[=action]>", "stop an action, or every action of an event (repeatable)", collect, [])
    .option("--lun-policy <policy>", "sequential, pool, constant (with --lun) or explicit")
    .option("--lun <n>", "the LUN of every new snapshot (--lun-policy constant)")
    .option("--mirror <path|off>", "keep an image file or block device as a full copy of the current volume (off: detach, the file stays)")
    .addHelpText(
      "after",
      [
        "",
        "Actions for --on: compact, archive:VAULT, exec:COMMAND (run by /bin/sh with SNAPLOG_EVENT,",
        "SNAPLOG_STORE, SNAPLOG_DISK, SNAPLOG_SNAPSHOT, SNAPLOG_LUN, SNAPLOG_LSN set; killed after",
        "60 s), webhook:URL (the event POSTed as JSON). Scheduled snapshots are named",
        "auto-YYYYMMDDTHHMMSSZ; retention deletes only those. The running server applies policies;",
        "docs/policies.md explains them.",
        "",
        "Examples:",
        "  $ snaplog policy set vm1 --snapshot-every 1h --keep-hourly 24 --keep-daily 7",
        '  $ snaplog policy set vm1 --snapshot-cron "0 2 * * *" --timezone Europe/Berlin --keep-daily 30',
        "  $ snaplog policy set vm1 --space-high 85% --space-action delete-oldest",
        "  $ snaplog policy set vm1 --on snapshot-created=exec:/usr/local/bin/notify.sh",
        "  $ snaplog policy set vm1 --lun-policy constant --lun 42",
        "  $ snaplog policy set vm1 --history 24h --history-max 20G",
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

function registerPolicyPrune(policy: Command): void {
  policy
    .command("prune")
    .description("apply retention now: delete the scheduled snapshots no --keep-* rule keeps")
    .argument("<disk>", "disk name")
    .option("--dry-run", "only say what would be deleted")
    .addHelpText("after", "\nExamples:\n  $ snaplog policy prune vm1 --dry-run\n  $ snaplog policy prune vm1")
    .action(async (disk: string, options: { dryRun?: boolean }, command: Command) => {
      const diskName = checkName("disk", disk);
      await runOperation(command, {
        run: (operations) => operations.prunePolicy({ disk: diskName, dryRun: options.dryRun === true }),
        print: (result) => {
          const verb = result.dryRun ? "would delete" : "deleted";
          if (result.deleted.length === 0) printLine(`retention ${result.dryRun ? "would delete" : "deleted"} nothing on ${result.disk}`);
          else printLine(`retention ${verb} ${result.deleted.length} snapshot(s) of ${result.disk}:\n  ${result.deleted.join("\n  ")}`);
        },
      });
    });
}

/** Every option is parsed here, before the store is touched; the store checks the whole. */
function policyUpdate(disk: string, options: SetOptions): PolicyUpdate {
  const update: PolicyUpdate = { disk };
  const offOr = <T>(text: string | undefined, parse: (value: string) => T): T | null | undefined =>
    text === undefined ? undefined : text === "off" ? null : parse(text);
  if (options.history !== undefined) update.historySeconds = parseDuration(options.history, "--history");
  update.historyMaxBytes = offOr(options.historyMax, (text) => parseSize(text, "--history-max"));
  if (options.autoCompact !== undefined) update.autoCompact = parseSwitch(options.autoCompact, "--auto-compact");
  if (options.compactOnDelete !== undefined) update.compactOnDelete = parseSwitch(options.compactOnDelete, "--compact-on-delete");
  if (options.mergeOldestIntoBaseline !== undefined)
    update.mergeOldestIntoBaseline = parseSwitch(options.mergeOldestIntoBaseline, "--merge-oldest-into-baseline");
  update.snapshotEverySeconds = offOr(options.snapshotEvery, (text) => parseDuration(text, "--snapshot-every"));
  update.snapshotCron = offOr(options.snapshotCron, (text) => text);
  if (options.timezone !== undefined) update.timezone = options.timezone;
  for (const [option, key] of [
    ["keepLast", "keepLast"],
    ["keepHourly", "keepHourly"],
    ["keepDaily", "keepDaily"],
    ["keepWeekly", "keepWeekly"],
    ["keepMonthly", "keepMonthly"],
  ] as const) {
    const text = options[option];
    if (text !== undefined) update[key] = parseCount(text, `--${option.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)}`);
  }
  update.spaceHighPercent = offOr(options.spaceHigh, parsePercent);
  if (options.spaceAction !== undefined) update.spaceAction = options.spaceAction as SpaceAction;
  if (options.spaceVault !== undefined) update.spaceVault = options.spaceVault;
  update.replicationLagHighSeconds = offOr(options.replicationLagHigh, (text) => parseDuration(text, "--replication-lag-high"));
  if (options.on.length > 0) update.hooksAdd = options.on.map(parseHook);
  if (options.off.length > 0) update.hooksRemove = options.off.map(parseHookRemoval);
  if (options.lunPolicy !== undefined) update.lunPolicy = options.lunPolicy as LunPolicy;
  update.lun = offOr(options.lun, (text) => parseCount(text, "--lun"));
  // Absolute: the server resolves nothing against the CLI's directory.
  update.mirror = offOr(options.mirror, (text) => path.resolve(text));
  for (const key of Object.keys(update) as (keyof PolicyUpdate)[]) if (update[key] === undefined) delete update[key];
  if (Object.keys(update).length === 1)
    throw invalidArgument("policy set needs at least one option (snaplog policy set --help lists them)");
  return update;
}

function parseSwitch(text: string, what: string): boolean {
  if (text === "on") return true;
  if (text === "off") return false;
  throw invalidArgument(`invalid ${what} "${text}": expected on or off`);
}

function parsePercent(text: string): number {
  const match = /^(\d+)%?$/.exec(text);
  if (match === null) throw invalidArgument(`invalid --space-high "${text}": a percentage such as 85%, or off`);
  return Number(match[1]);
}

function parseHook(text: string): EventHook {
  const equals = text.indexOf("=");
  if (equals <= 0 || equals === text.length - 1)
    throw invalidArgument(`invalid --on "${text}": expected EVENT=ACTION, e.g. snapshot-created=compact`);
  return { event: text.slice(0, equals) as PolicyEvent, action: text.slice(equals + 1) };
}

function parseHookRemoval(text: string): { event: PolicyEvent; action?: string } {
  const equals = text.indexOf("=");
  if (equals < 0) return { event: text as PolicyEvent };
  return { event: text.slice(0, equals) as PolicyEvent, action: text.slice(equals + 1) };
}

export function policyFields(policy: DiskPolicy): Array<[string, string]> {
  const onOff = (value: boolean) => (value ? "on" : "off");
  const schedule =
    policy.snapshotEverySeconds !== null
      ? `every ${formatDuration(policy.snapshotEverySeconds)}`
      : policy.snapshotCron !== null
        ? `cron "${policy.snapshotCron}" (${policy.timezone})`
        : "off";
  const keeps = (["keepLast", "keepHourly", "keepDaily", "keepWeekly", "keepMonthly"] as const)
    .filter((rule) => policy[rule] > 0)
    .map((rule) => `${rule.slice(4).toLowerCase()} ${policy[rule]}`);
  return [
    ["history", formatDuration(policy.historySeconds)],
    ["history max", policy.historyMaxBytes === null ? "off" : formatBytes(policy.historyMaxBytes)],
    ["auto-compact", onOff(policy.autoCompact)],
    ["compact-on-delete", onOff(policy.compactOnDelete)],
    ["merge-oldest-into-baseline", onOff(policy.mergeOldestIntoBaseline)],
    ["schedule", schedule],
    ["next scheduled run", policy.nextScheduledRun ?? "-"],
    ["timezone", policy.timezone],
    ["retention", keeps.length === 0 ? "off (every scheduled snapshot kept)" : `keep ${keeps.join(", ")}`],
    ["retention would delete", policy.retentionWouldDelete.length === 0 ? "nothing" : policy.retentionWouldDelete.join(" ")],
    [
      "space",
      policy.spaceHighPercent === null
        ? "off"
        : `above ${policy.spaceHighPercent}%: ${policy.spaceAction}${policy.spaceVault === null ? "" : ` to ${policy.spaceVault}`}`,
    ],
    ["replication lag high", policy.replicationLagHighSeconds === null ? "off" : formatDuration(policy.replicationLagHighSeconds)],
    ["on events", policy.hooks.length === 0 ? "none" : policy.hooks.map((hook) => `${hook.event}=${hook.action}`).join("  ")],
    ["LUN policy", policy.lunPolicy === "constant" ? `constant ${policy.lun}` : policy.lunPolicy],
    ["mirror", policy.mirror ?? "off"],
  ];
}
