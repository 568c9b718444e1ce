/**
 * A disk's policy settings: their defaults, how an update applies, and every refusal of
 * SPEC §4 — checked whole before anything changes, so a policy that cannot hold is refused
 * with a one-line reason (INVALID_ARGUMENT: exit 2, HTTP 400) and nothing is written.
 */
import { checkMirrorPath } from "../mirror/mirror-path.js";
import { invalidArgument } from "../../util/errors.js";
import type { DiskFile } from "../disk-file.js";
import { LUN_MAX, LUN_MIN } from "../luns.js";
import { POLICY_EVENTS, SPACE_ACTIONS, LUN_POLICIES } from "../operations/index.js";
import type { EventHook, PolicyEvent, PolicySettings, PolicyUpdate } from "../operations/index.js";
import { checkSchedule, checkTimeZone, localTimeZone, type Schedule } from "./schedule.js";
import { RETENTION_RULES } from "./retention.js";

/** A new disk's window when none is given: an hour of every write. */
export const HISTORY_SECONDS_DEFAULT = 3600;
/** Space use (percent of the file system) a space policy may name. */
export const SPACE_HIGH_PERCENT_MIN = 1;
export const SPACE_HIGH_PERCENT_MAX = 99;
/** Retention counts and attached actions are bounded: a policy is a few rules, not data. */
export const KEEP_COUNT_MAX = 100_000;
export const HOOKS_MAX = 64;
export const HOOK_ACTION_BYTES_MAX = 4096;

/** The settings of a disk made before an option existed: the option's default. */
export function defaultSettings(historySeconds: number): PolicySettings {
  return {
    historySeconds,
    historyMaxBytes: null,
    autoCompact: true,
    compactOnDelete: true,
    mergeOldestIntoBaseline: false,
    snapshotEverySeconds: null,
    snapshotCron: null,
    timezone: localTimeZone(),
    keepLast: 0,
    keepHourly: 0,
    keepDaily: 0,
    keepWeekly: 0,
    keepMonthly: 0,
    spaceHighPercent: null,
    spaceAction: null,
    spaceVault: null,
    replicationLagHighSeconds: null,
    hooks: [],
    lunPolicy: "sequential",
    lun: null,
    mirror: null,
  };
}

/** The disk's settings, with the defaults of the options its disk.json predates. */
export function settingsOf(meta: DiskFile): PolicySettings {
  const settings: PolicySettings = { ...defaultSettings(meta.historySeconds), ...meta.policy, historySeconds: meta.historySeconds };
  if (meta.autoCompact !== undefined) settings.autoCompact = meta.autoCompact;
  if (meta.compactOnDelete !== undefined) settings.compactOnDelete = meta.compactOnDelete;
  return settings;
}

/** The disk's schedule, if it has one. */
export function scheduleOf(settings: PolicySettings): Schedule | undefined {
  if (settings.snapshotEverySeconds !== null) return { kind: "every", seconds: settings.snapshotEverySeconds };
  if (settings.snapshotCron !== null) return { kind: "cron", expression: settings.snapshotCron, timezone: settings.timezone };
  return undefined;
}

/** What the rest of the store knows that an update is checked against. */
export interface SettingsContext {
  /** Who holds or reserves `lun` besides this disk, or undefined when it is free for it. */
  lunHolder(lun: number): string | undefined;
  /** Whether a vault of that name exists (none do until vaults are built). */
  vaultExists(name: string): boolean;
}

/** The settings after `update`, checked whole; throws INVALID_ARGUMENT with the reason. */
export function applyUpdate(current: PolicySettings, update: PolicyUpdate, context: SettingsContext): PolicySettings {
  if (update.snapshotEverySeconds != null && update.snapshotCron != null) {
    throw invalidArgument("give one schedule: --snapshot-every or --snapshot-cron, not both");
  }
  const next: PolicySettings = { ...current, hooks: [...current.hooks] };
  const copy = <K extends keyof PolicySettings>(key: K) => {
    const value = (update as Partial<PolicySettings>)[key];
    if (value !== undefined) next[key] = value as PolicySettings[K];
  };
  for (const key of ["historySeconds", "historyMaxBytes", "autoCompact", "compactOnDelete", "mergeOldestIntoBaseline", "timezone"] as const)
    copy(key);
  for (const key of ["spaceHighPercent", "spaceAction", "spaceVault", "replicationLagHighSeconds", "lunPolicy", "lun"] as const) copy(key);
  for (const rule of RETENTION_RULES) copy(rule);
  if (update.mirror !== undefined) next.mirror = update.mirror === null ? null : checkMirrorPath(update.mirror);
  // Setting one schedule replaces the other; `off` (null) for either stops the schedule.
  if (update.snapshotEverySeconds !== undefined) {
    next.snapshotEverySeconds = update.snapshotEverySeconds;
    next.snapshotCron = null;
  }
  if (update.snapshotCron !== undefined) {
    next.snapshotCron = update.snapshotCron;
    if (update.snapshotCron !== null || update.snapshotEverySeconds === undefined) next.snapshotEverySeconds = null;
  }
  for (const removal of update.hooksRemove ?? []) {
    checkEvent(removal.event);
    next.hooks = next.hooks.filter(
      (hook) => hook.event !== removal.event || (removal.action !== undefined && hook.action !== removal.action),
    );
  }
  for (const hook of update.hooksAdd ?? []) {
    checkHook(hook, context);
    if (!next.hooks.some((held) => held.event === hook.event && held.action === hook.action)) next.hooks.push(hook);
  }
  if (next.lunPolicy !== "constant" && update.lunPolicy !== undefined && update.lun === undefined) next.lun = null;
  checkSettings(next, context);
  return next;
}

/** INVALID_ARGUMENT unless `seconds` is a whole number of seconds >= 0. */
export function checkHistorySeconds(seconds: number): number {
  if (!Number.isSafeInteger(seconds) || seconds < 0)
    throw invalidArgument(`history window ${seconds} must be a whole number of seconds >= 0`);
  return seconds;
}

function checkSettings(settings: PolicySettings, context: SettingsContext): void {
  checkHistorySeconds(settings.historySeconds);
  if (settings.historyMaxBytes !== null && (!Number.isSafeInteger(settings.historyMaxBytes) || settings.historyMaxBytes <= 0)) {
    throw invalidArgument(`--history-max must be a size above 0, or off`);
  }
  checkTimeZone(settings.timezone);
  const schedule = scheduleOf(settings);
  if (schedule !== undefined) checkSchedule(schedule);
  for (const rule of RETENTION_RULES) {
    const count = settings[rule];
    if (!Number.isSafeInteger(count) || count < 0 || count > KEEP_COUNT_MAX) {
      throw invalidArgument(`--${kebab(rule)} must be a whole number from 0 to ${KEEP_COUNT_MAX}`);
    }
  }
  checkSpace(settings, context);
  checkLunPolicy(settings, schedule !== undefined, context);
  if (settings.hooks.length > HOOKS_MAX) throw invalidArgument(`at most ${HOOKS_MAX} event actions per disk`);
}

function checkSpace(settings: PolicySettings, context: SettingsContext): void {
  const high = settings.spaceHighPercent;
  if (high !== null && (!Number.isInteger(high) || high < SPACE_HIGH_PERCENT_MIN || high > SPACE_HIGH_PERCENT_MAX)) {
    throw invalidArgument(`--space-high must be a whole percentage from ${SPACE_HIGH_PERCENT_MIN}% to ${SPACE_HIGH_PERCENT_MAX}%`);
  }
  if (settings.spaceAction !== null && !(SPACE_ACTIONS as readonly string[]).includes(settings.spaceAction)) {
    throw invalidArgument(`--space-action must be one of ${SPACE_ACTIONS.join(", ")}`);
  }
  if (high !== null && settings.spaceAction === null)
    throw invalidArgument("--space-high needs --space-action compact|delete-oldest|archive-then-delete");
  if (high === null && settings.spaceAction !== null) throw invalidArgument("--space-action needs --space-high P%");
  if (settings.spaceAction === "archive-then-delete") {
    if (settings.spaceVault === null) throw invalidArgument("--space-action archive-then-delete needs --space-vault NAME");
    if (!context.vaultExists(settings.spaceVault))
      throw invalidArgument(`vault ${settings.spaceVault} does not exist`, { hint: "add it first: snaplog vault add NAME URL" });
  }
}

function checkLunPolicy(settings: PolicySettings, scheduled: boolean, context: SettingsContext): void {
  if (!(LUN_POLICIES as readonly string[]).includes(settings.lunPolicy))
    throw invalidArgument(`--lun-policy must be one of ${LUN_POLICIES.join(", ")}`);
  if (settings.lunPolicy === "constant") {
    if (settings.lun === null) throw invalidArgument("--lun-policy constant needs --lun N");
    if (!Number.isInteger(settings.lun) || settings.lun < LUN_MIN || settings.lun > LUN_MAX) {
      throw invalidArgument(`LUN ${settings.lun} is not an integer from ${LUN_MIN} to ${LUN_MAX}`);
    }
    const holder = context.lunHolder(settings.lun);
    if (holder !== undefined) throw invalidArgument(`LUN ${settings.lun} is already held by ${holder}`);
  } else if (settings.lun !== null) {
    throw invalidArgument("--lun goes only with --lun-policy constant");
  }
  if (settings.lunPolicy === "explicit" && scheduled) {
    throw invalidArgument(
      "--lun-policy explicit needs a --lun for every snapshot, which a schedule cannot give: stop the schedule or choose another LUN policy",
    );
  }
}

function checkEvent(event: string): asserts event is PolicyEvent {
  if (!(POLICY_EVENTS as readonly string[]).includes(event))
    throw invalidArgument(`unknown event "${event}": one of ${POLICY_EVENTS.join(", ")}`);
}

/** The parts of an action: `compact`, `archive:VAULT`, `exec:COMMAND`, `webhook:URL`. */
export type HookAction =
  { kind: "compact" } | { kind: "archive"; vault: string } | { kind: "exec"; command: string } | { kind: "webhook"; url: URL };

export function parseHookAction(text: string): HookAction {
  if (text === "compact") return { kind: "compact" };
  const colon = text.indexOf(":");
  const kind = colon < 0 ? text : text.slice(0, colon);
  const argument = colon < 0 ? "" : text.slice(colon + 1);
  if (kind === "exec" && argument.trim() !== "") return { kind: "exec", command: argument };
  if (kind === "archive" && argument !== "") return { kind: "archive", vault: argument };
  if (kind === "webhook") {
    let url: URL | undefined;
    try {
      url = new URL(argument);
    } catch {
      url = undefined;
    }
    if (url !== undefined && (url.protocol === "http:" || url.protocol === "https:")) return { kind: "webhook", url };
    throw invalidArgument(`webhook action "${text}": give an http or https URL (webhook:http://host:port/path)`);
  }
  throw invalidArgument(`unknown action "${text}": compact, archive:VAULT, exec:COMMAND or webhook:URL`);
}

function checkHook(hook: EventHook, context: SettingsContext): void {
  checkEvent(hook.event);
  if (Buffer.byteLength(hook.action) > HOOK_ACTION_BYTES_MAX) throw invalidArgument(`an action is at most ${HOOK_ACTION_BYTES_MAX} bytes`);
  const action = parseHookAction(hook.action);
  if (action.kind === "archive" && !context.vaultExists(action.vault)) {
    throw invalidArgument(`vault ${action.vault} does not exist`, { hint: "add it first: snaplog vault add NAME URL" });
  }
}

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
}
