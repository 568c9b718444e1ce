/**
 * One run of an action attached to an event (SPEC §4.3), and its record in the event log:
 * "hook-run" when it succeeded, "hook-failed" when it did not (a command's non-zero status or
 * kill at the limit, a webhook's non-2xx status or no answer, a compaction's or an archive's
 * error). Either way `reason` is the event that triggered it, and
 * `details` says the action, the triggering event's seq, the duration and the status.
 * A run never throws: whatever goes wrong is the event.
 */
import type { EventHook } from "../store/operations/index.js";
import type { StoreEvent } from "../store/event-log.js";
import { parseHookAction, type HookAction } from "../store/policy/policy-settings.js";
import { runExec } from "./hook-exec.js";
import { postWebhook } from "./hook-webhook.js";
import { errorMessage, type RunnerContext } from "./runner-context.js";

/** The tail of a command's output that goes into its event (the server log gets up to HookLimits.outputBytesMax). */
export const HOOK_OUTPUT_EVENT_CHARS = 1000;

type Details = Record<string, string | number | boolean | null>;

interface HookOutcome {
  ok: boolean;
  /** How it ended, for the event's message: "exited 0", "HTTP 503", ... */
  summary: string;
  details: Details;
}

/** The environment of an `exec:` command: the SPEC's six variables ("" when the event has no such field). */
export function hookEnvironment(storePath: string, event: StoreEvent): Record<string, string> {
  return {
    SNAPLOG_EVENT: event.type,
    SNAPLOG_STORE: storePath,
    SNAPLOG_DISK: event.disk ?? "",
    SNAPLOG_SNAPSHOT: event.snapshot ?? "",
    SNAPLOG_LUN: event.lun === undefined ? "" : String(event.lun),
    SNAPLOG_LSN: event.lsn === undefined ? "" : String(event.lsn),
  };
}

export async function runHook(context: RunnerContext, hook: EventHook, event: StoreEvent): Promise<void> {
  const disk = event.disk ?? "";
  if (context.signal.aborted) {
    context.logger.warn(`policy: ${hook.event}=${hook.action} of disk ${disk} not run: the server is stopping`);
    return;
  }
  const startedMs = performance.now();
  let outcome: HookOutcome;
  try {
    outcome = await runAction(context, parseHookAction(hook.action), event);
  } catch (error) {
    outcome = { ok: false, summary: `failed: ${errorMessage(error)}`, details: {} };
  }
  const durationMs = Math.round(performance.now() - startedMs);
  const message = `${hook.event}=${hook.action} of disk ${disk} ${outcome.summary} (${durationMs} ms, for event ${event.seq})`;
  if (outcome.ok) context.logger.info(`policy: ${message}`);
  else context.logger.warn(`policy: ${message}`);
  await context.record({
    type: outcome.ok ? "hook-run" : "hook-failed",
    disk: event.disk,
    snapshot: event.snapshot,
    reason: event.type,
    message,
    details: { action: hook.action, triggerSeq: event.seq, durationMs, ...outcome.details },
  });
}

function runAction(context: RunnerContext, action: HookAction, event: StoreEvent): Promise<HookOutcome> {
  switch (action.kind) {
    case "compact":
      return runCompact(context, event.disk ?? "");
    case "exec":
      return runCommand(context, action.command, event);
    case "webhook":
      return runWebhook(context, action.url, event);
    case "archive":
      return runArchive(context, action.vault, event);
  }
}

/**
 * archive:VAULT: the event's snapshot when it names one (snapshot-created: that snapshot goes
 * out), else a new snapshot of the disk; incremental from the newest one the vault has.
 */
async function runArchive(context: RunnerContext, vault: string, event: StoreEvent): Promise<HookOutcome> {
  const result = await context.store.archive({ disk: event.disk ?? "", vault, snapshot: event.snapshot });
  return {
    ok: true,
    summary: `archived snapshot ${result.snapshot} to vault ${vault} (${result.kind}, ${result.bytesSent} bytes sent)`,
    details: {
      vault,
      snapshot: result.snapshot,
      chainId: result.chainId,
      index: result.index,
      bytes: result.bytes,
      bytesSent: result.bytesSent,
    },
  };
}

async function runCompact(context: RunnerContext, disk: string): Promise<HookOutcome> {
  const result = await context.store.compact({ disk });
  return {
    ok: true,
    summary: `compacted (${result.bytesFreed} bytes freed)`,
    details: { bytesFreed: result.bytesFreed, entriesFreed: result.entriesFreed },
  };
}

async function runCommand(context: RunnerContext, command: string, event: StoreEvent): Promise<HookOutcome> {
  const result = await runExec(command, {
    env: hookEnvironment(context.store.path, event),
    timeoutMs: context.limits.execTimeoutMs,
    outputBytesMax: context.limits.outputBytesMax,
    signal: context.signal,
  });
  if (result.outputBytes > 0) {
    context.logger.info(`policy: output of exec hook on disk ${event.disk ?? ""}`, {
      event: event.type,
      command,
      outputBytes: result.outputBytes,
      output: result.output,
    });
  }
  const details: Details = {
    exitStatus: result.exitStatus,
    signal: result.signal,
    timedOut: result.timedOut,
    outputBytes: result.outputBytes,
    output: result.output.slice(-HOOK_OUTPUT_EVENT_CHARS),
  };
  if (result.spawnError !== null) return { ok: false, summary: `could not start: ${result.spawnError}`, details };
  if (result.timedOut)
    return { ok: false, summary: `killed after ${context.limits.execTimeoutMs} ms (the limit), with its process group`, details };
  if (result.stopped) return { ok: false, summary: "killed: the server stopped", details };
  if (result.exitStatus !== 0) {
    const how = result.exitStatus === null ? `ended by ${result.signal ?? "a signal"}` : `exited ${result.exitStatus}`;
    return { ok: false, summary: how, details };
  }
  return { ok: true, summary: "exited 0", details };
}

async function runWebhook(context: RunnerContext, url: URL, event: StoreEvent): Promise<HookOutcome> {
  const result = await postWebhook(url, event, { timeoutMs: context.limits.webhookTimeoutMs, signal: context.signal });
  const details: Details = { httpStatus: result.httpStatus };
  if (result.httpStatus === null)
    return { ok: false, summary: `no answer: ${result.detail}`, details: { ...details, error: result.detail } };
  if (!result.ok) return { ok: false, summary: `answered HTTP ${result.httpStatus}`, details: { ...details, body: result.detail } };
  return { ok: true, summary: `answered HTTP ${result.httpStatus}`, details };
}
