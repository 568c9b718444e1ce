/**
 * A disk's policy, shown and edited (SPEC §4). Only the fields changed are sent, as
 * `policy set` does; a policy that cannot hold is refused whole by the server, and the page
 * shows its reason.
 */
import { useEffect, useState } from "preact/hooks";
import { call, encode } from "./api.js";
import { Outcome, useAction } from "./action.js";
import { bytes, duration, time } from "./format.js";
import { html } from "./html.js";
import type { DiskPolicy, PolicySettings, VaultInfo } from "./types.js";

/** The form's fields as text, as typed. */
interface Draft {
  every: string;
  cron: string;
  timezone: string;
  keepLast: string;
  keepHourly: string;
  keepDaily: string;
  keepWeekly: string;
  keepMonthly: string;
  history: string;
  spaceHigh: string;
  spaceAction: string;
  spaceVault: string;
  lunPolicy: string;
  lun: string;
}

function draftOf(policy: DiskPolicy): Draft {
  return {
    every: policy.snapshotEverySeconds === null ? "off" : durationText(policy.snapshotEverySeconds),
    cron: policy.snapshotCron ?? "off",
    timezone: policy.timezone,
    keepLast: String(policy.keepLast),
    keepHourly: String(policy.keepHourly),
    keepDaily: String(policy.keepDaily),
    keepWeekly: String(policy.keepWeekly),
    keepMonthly: String(policy.keepMonthly),
    history: durationText(policy.historySeconds),
    spaceHigh: policy.spaceHighPercent === null ? "off" : String(policy.spaceHighPercent),
    spaceAction: policy.spaceAction ?? "compact",
    spaceVault: policy.spaceVault ?? "",
    lunPolicy: policy.lunPolicy,
    lun: policy.lun === null ? "" : String(policy.lun),
  };
}

/** Seconds as the CLI writes them: 90 → "90s", 3600 → "1h". */
function durationText(seconds: number): string {
  for (const [unit, size] of [
    ["d", 86400],
    ["h", 3600],
    ["m", 60],
  ] as const)
    if (seconds > 0 && seconds % size === 0) return `${seconds / size}${unit}`;
  return `${seconds}s`;
}

function parseDuration(field: string, text: string): number {
  const match = /^\s*(\d+)\s*(s|m|h|d)?\s*$/.exec(text);
  if (match === null) throw new Error(`${field}: "${text}" is not a duration (e.g. 30s, 15m, 1h, 7d)`);
  const size = { s: 1, m: 60, h: 3600, d: 86400 }[(match[2] ?? "s") as "s" | "m" | "h" | "d"];
  return Number(match[1]) * size;
}

function parseCount(field: string, text: string): number {
  if (!/^\s*\d+\s*$/.test(text)) throw new Error(`${field}: "${text}" is not a whole number`);
  return Number(text);
}

const isOff = (text: string) => text.trim() === "" || text.trim() === "off";

/** The update: the fields whose text differs from the policy's, parsed. */
function changesOf(before: Draft, after: Draft): Partial<PolicySettings> {
  const update: Partial<PolicySettings> = {};
  if (after.every !== before.every) update.snapshotEverySeconds = isOff(after.every) ? null : parseDuration("snapshot every", after.every);
  if (after.cron !== before.cron) update.snapshotCron = isOff(after.cron) ? null : after.cron.trim();
  if (after.timezone !== before.timezone) update.timezone = after.timezone.trim();
  for (const key of ["keepLast", "keepHourly", "keepDaily", "keepWeekly", "keepMonthly"] as const)
    if (after[key] !== before[key]) update[key] = parseCount(key, after[key]);
  if (after.history !== before.history) update.historySeconds = parseDuration("history", after.history);
  if (after.spaceHigh !== before.spaceHigh)
    update.spaceHighPercent = isOff(after.spaceHigh) ? null : parseCount("space high", after.spaceHigh);
  if (after.spaceAction !== before.spaceAction || (after.spaceHigh !== before.spaceHigh && !isOff(after.spaceHigh)))
    update.spaceAction = after.spaceAction as PolicySettings["spaceAction"];
  if (after.spaceVault !== before.spaceVault) update.spaceVault = after.spaceVault === "" ? null : after.spaceVault;
  if (after.lunPolicy !== before.lunPolicy) update.lunPolicy = after.lunPolicy as PolicySettings["lunPolicy"];
  if (after.lun !== before.lun) update.lun = isOff(after.lun) ? null : parseCount("LUN", after.lun);
  return update;
}

export function PolicyForm({
  disk,
  policy,
  vaults,
  onSaved,
}: {
  disk: string;
  policy: DiskPolicy;
  vaults: VaultInfo[];
  onSaved: () => void;
}) {
  const saved = draftOf(policy);
  const [draft, setDraft] = useState<Draft>(saved);
  const [editing, setEditing] = useState(false);
  const action = useAction();
  // While not editing, the form follows the policy as it changes (another client, the CLI).
  useEffect(() => {
    if (!editing) setDraft(saved);
  }, [JSON.stringify(saved), editing]);

  const field = (key: keyof Draft) => ({
    name: key,
    value: draft[key],
    onInput: (event: Event) => {
      setEditing(true);
      setDraft({ ...draft, [key]: (event.target as HTMLInputElement).value });
    },
  });
  const submit = (event: Event) => {
    event.preventDefault();
    void action.run(async () => {
      const update = changesOf(saved, draft);
      if (Object.keys(update).length === 0) return "Nothing changed.";
      await call<DiskPolicy>("PATCH", `/v1/disks/${encode(disk)}/policy`, update);
      setEditing(false);
      onSaved();
      return `Policy saved: ${Object.keys(update).join(", ")}.`;
    });
  };
  const reset = () => {
    setEditing(false);
    setDraft(saved);
  };

  return html`<form class="policy" onSubmit=${submit} aria-label="policy">
    <fieldset>
      <legend>Schedule</legend>
      <label>Snapshot every <input ...${field("every")} placeholder="off, 15m, 1h" /></label>
      <label>or cron <input ...${field("cron")} placeholder="off, 0 * * * *" /></label>
      <label>Time zone <input ...${field("timezone")} /></label>
      <p class="muted">Next run: ${policy.nextScheduledRun === null ? "none" : time(policy.nextScheduledRun)}</p>
    </fieldset>
    <fieldset>
      <legend>Retention (scheduled snapshots only)</legend>
      <label>Last <input class="short" ...${field("keepLast")} /></label>
      <label>Hourly <input class="short" ...${field("keepHourly")} /></label>
      <label>Daily <input class="short" ...${field("keepDaily")} /></label>
      <label>Weekly <input class="short" ...${field("keepWeekly")} /></label>
      <label>Monthly <input class="short" ...${field("keepMonthly")} /></label>
      <p class="muted">
        Would delete now: ${policy.retentionWouldDelete.length === 0 ? "nothing" : policy.retentionWouldDelete.join(", ")}
      </p>
    </fieldset>
    <fieldset>
      <legend>History and space</legend>
      <label>History window <input class="short" ...${field("history")} /></label>
      <label>Space high % <input class="short" ...${field("spaceHigh")} placeholder="off" /></label>
      <label
        >Action
        <select ...${field("spaceAction")}>
          <option value="compact">compact</option>
          <option value="delete-oldest">delete oldest snapshot</option>
          <option value="archive-then-delete">archive, then delete</option>
        </select></label
      >
      <label
        >Vault
        <select ...${field("spaceVault")}>
          <option value="">none</option>
          ${vaults.map((vault) => html`<option value=${vault.name}>${vault.name}</option>`)}
        </select></label
      >
      <p class="muted">
        ${`History kept now: ${duration(policy.historySeconds)}${policy.historyMaxBytes === null ? "" : `, at most ${bytes(policy.historyMaxBytes)}`}`}
      </p>
    </fieldset>
    <fieldset>
      <legend>LUNs of new snapshots</legend>
      <label
        >Policy
        <select ...${field("lunPolicy")}>
          <option value="sequential">sequential</option>
          <option value="pool">pool (reuse freed)</option>
          <option value="constant">constant</option>
          <option value="explicit">explicit</option>
        </select></label
      >
      <label>LUN <input class="short" ...${field("lun")} placeholder="constant only" /></label>
    </fieldset>
    ${
      policy.hooks.length === 0
        ? null
        : html`<p class="muted">Event actions: ${policy.hooks.map((hook) => html`<code>${hook.event}=${hook.action}</code> `)}</p>`
    }
    <div class="inline">
      <button disabled=${action.busy}>Save policy</button>
      ${editing ? html`<button type="button" class="secondary" onClick=${reset}>Discard changes</button>` : null}
    </div>
    <${Outcome} action=${action} />
  </form>`;
}
