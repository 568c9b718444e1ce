/**
 * One disk: its facts and space, its timeline (snapshots, the history window, the write
 * rate), its snapshots and LUNs, its policy, mirror and replication, its events; and the
 * everyday actions: create and delete a snapshot, restore a point in time as a snapshot,
 * compact, archive now.
 */
import { useEffect, useState } from "preact/hooks";
import { call, callWithProgress, encode } from "./api.js";
import { Outcome, useAction } from "./action.js";
import { EventList } from "./events-view.js";
import { bytes, duration, localInputValue, rate, time } from "./format.js";
import { html } from "./html.js";
import type { LiveState } from "./live.js";
import { PolicyForm } from "./policy-form.js";
import { SpaceBar } from "./space-bar.js";
import { TimeChart } from "./time-chart.js";
import { Timeline } from "./timeline.js";
import type { DiskDetail, SnapshotInfo, VaultInfo } from "./types.js";

export function DiskView({ name, live }: { name: string; live: LiveState }) {
  const [disk, setDisk] = useState<DiskDetail | null>(null);
  const [missing, setMissing] = useState<string | null>(null);
  const [vaults, setVaults] = useState<VaultInfo[]>([]);
  const summary = live.status?.disks.find((one) => one.name === name);
  // Fetched again when the disk changes (a write, a snapshot, a policy) or an event arrives.
  const changeKey = `${JSON.stringify(summary ?? null)}|${live.events.length}`;

  const load = async () => {
    try {
      setDisk(await call<DiskDetail>("GET", `/v1/disks/${encode(name)}`));
      setMissing(null);
    } catch (error) {
      setMissing((error as Error).message);
    }
  };
  useEffect(() => void load(), [name, changeKey]);
  useEffect(() => {
    call<VaultInfo[]>("GET", "/v1/vaults").then(setVaults, () => setVaults([]));
  }, [name]);

  if (missing !== null && disk === null) return html`<div class="outcome refusal" role="alert">${missing}</div>`;
  if (disk === null) return html`<p class="muted">Reading ${name}…</p>`;

  const mirror = live.status?.mirrors.find((one) => one.disk === name);
  const relation = live.status?.replication.find((one) => one.disk === name);
  const times = live.samples.map((sample) => sample.t);
  const markers = disk.snapshots.map((snapshot) => ({ t: new Date(snapshot.createdAt).getTime() / 1000, label: snapshot.name }));
  const space = disk.space;

  return html`<section class="disk">
    <h2>${disk.name}</h2>
    <dl class="facts">
      <div>
        <dt>Size</dt>
        <dd>${bytes(disk.sizeBytes)}</dd>
      </div>
      <div>
        <dt>Block size</dt>
        <dd>${bytes(disk.blockSizeBytes)}</dd>
      </div>
      <div>
        <dt>LUN</dt>
        <dd>${disk.lun}</dd>
      </div>
      <div>
        <dt>NBD export</dt>
        <dd><code>${disk.name}</code></dd>
      </div>
      <div>
        <dt>Entries</dt>
        <dd>${disk.entryCount.toLocaleString()}</dd>
      </div>
      <div>
        <dt>Newest LSN</dt>
        <dd>${disk.lsnLast.toLocaleString()}</dd>
      </div>
      <div>
        <dt>History window</dt>
        <dd>${disk.historySeconds === 0 ? "off" : duration(disk.historySeconds)}</dd>
      </div>
      <div>
        <dt>Created</dt>
        <dd>${time(disk.createdAt)}</dd>
      </div>
    </dl>

    <h3>Space</h3>
    <${SpaceBar}
      parts=${[
        { label: "baseline", bytes: space.baselineBytes, className: "baseline" },
        { label: "live log", bytes: space.logLiveBytes, className: "live" },
        { label: "dead log (compaction frees it)", bytes: space.logDeadBytes, className: "dead" },
        { label: "free slots", bytes: space.logFreeBytes, className: "free" },
        {
          label: "not yet used in segment files",
          bytes: Math.max(0, space.segmentBytes - space.logLiveBytes - space.logDeadBytes - space.logFreeBytes),
          className: "unused",
        },
      ]}
    />

    <h3>Timeline</h3>
    <${RestorePanel} disk=${disk} onDone=${load} />

    <div class="charts">
      <${TimeChart}
        title="Write and read rate"
        times=${times}
        format=${rate}
        markers=${markers}
        series=${[
          { label: "write", color: "#dc2626", values: live.samples.map((sample) => sample.disks[name]?.writeBytesPerSecond ?? null) },
          { label: "read", color: "#2563eb", values: live.samples.map((sample) => sample.disks[name]?.readBytesPerSecond ?? null) },
        ]}
      />
      <${TimeChart}
        title="Space in the log"
        times=${times}
        format=${bytes}
        markers=${markers}
        series=${[
          { label: "live", color: "#059669", values: live.samples.map((sample) => sample.disks[name]?.liveBytes ?? null) },
          { label: "segment files", color: "#d97706", values: live.samples.map((sample) => sample.disks[name]?.segmentBytes ?? null) },
        ]}
      />
    </div>

    <div class="columns">
      <div>
        <h3>Snapshots and LUNs</h3>
        <${CreateSnapshot} disk=${disk} onDone=${load} />
        <${SnapshotTable} disk=${disk} onDone=${load} />
        <h3>Maintenance</h3>
        <${CompactPanel} disk=${disk} onDone=${load} />
        <${ArchivePanel} disk=${disk} vaults=${vaults} onDone=${load} />
      </div>
      <div>
        <h3>Policy</h3>
        <${PolicyForm} disk=${disk.name} policy=${disk.policy} vaults=${vaults} onSaved=${load} />
        <h3>Mirror and replication</h3>
        <p>
          Mirror:${" "}${
            mirror === undefined
              ? html`<span class="muted">none</span>`
              : html`<span class="state ${mirror.state}">${mirror.state}</span>
                  <code>${mirror.path}</code> ${mirror.reason === undefined ? null : html` — ${mirror.reason}`} ·
                  ${bytes(mirror.dirtyBytes)} marked in the write-intent bitmap · ${mirror.blocksRepaired} blocks repaired`
          }
        </p>
        <p>
          Replication:${" "}${
            relation === undefined
              ? html`<span class="muted">none</span>`
              : html`<span class="state ${relation.state}">${relation.state}</span
                  >${" to "}<code>${relation.to}</code>${` (${relation.mode}) · lag `}<strong>${duration(relation.lagSeconds)}</strong>${` (${bytes(relation.lagBytes)}) · ${bytes(relation.bytesShipped)} shipped${relation.reason === null ? "" : ` — ${relation.reason}`}`}`
          }
        </p>
      </div>
    </div>

    <h3>Events</h3>
    <${EventList} events=${live.events} disk=${disk.name} />
  </section>`;
}

function RestorePanel({ disk, onDone }: { disk: DiskDetail; onDone: () => void }) {
  const [at, setAt] = useState(() => localInputValue(Date.now() - 60_000));
  const [asName, setAsName] = useState("");
  const action = useAction();
  const windowStart = disk.space.window.timeFirst;
  const submit = (event: Event) => {
    event.preventDefault();
    void action.run(async (onProgress) => {
      const moment = new Date(at);
      if (Number.isNaN(moment.getTime())) throw new Error(`"${at}" is not a date and time`);
      const result = await callWithProgress<{ snapshot?: SnapshotInfo; lsn: number }>(
        `/v1/disks/${encode(disk.name)}/restore`,
        { at: moment.toISOString(), asSnapshot: asName.trim() },
        onProgress,
      );
      onDone();
      return `Restored ${time(moment.toISOString())} as snapshot ${result.snapshot?.name ?? asName} (LSN ${result.lsn}${result.snapshot?.lun == null ? "" : `, LUN ${result.snapshot.lun}`}).`;
    });
  };
  return html`<div class="restore">
    <${Timeline} disk=${disk} nowMs=${Date.now()} onPick=${(ms: number) => setAt(localInputValue(ms))} />
    <p class="muted">
      ${
        disk.historySeconds === 0
          ? "History is off for this disk: only snapshots can be restored."
          : `Any moment since ${windowStart === null ? "the disk's first write" : time(windowStart)} can be restored (click the shaded band to pick one).`
      }
    </p>
    <form class="inline" onSubmit=${submit} aria-label="restore a point in time as a snapshot">
      <label
        >Point in time
        <input
          type="datetime-local"
          step="1"
          name="at"
          value=${at}
          onInput=${(e: Event) => setAt((e.target as HTMLInputElement).value)}
          required
      /></label>
      <label
        >as snapshot
        <input
          name="as"
          placeholder="name"
          value=${asName}
          onInput=${(e: Event) => setAsName((e.target as HTMLInputElement).value)}
          required
      /></label>
      <button disabled=${action.busy}>Restore as snapshot</button>
    </form>
    <${Outcome} action=${action} />
  </div>`;
}

function CreateSnapshot({ disk, onDone }: { disk: DiskDetail; onDone: () => void }) {
  const [name, setName] = useState("");
  const [lun, setLun] = useState("");
  const action = useAction();
  const submit = (event: Event) => {
    event.preventDefault();
    void action.run(async () => {
      const body: { name?: string; lun?: number } = {};
      if (name.trim() !== "") body.name = name.trim();
      if (lun.trim() !== "") body.lun = Number(lun);
      const snapshot = await call<SnapshotInfo>("POST", `/v1/disks/${encode(disk.name)}/snapshots`, body);
      setName("");
      setLun("");
      onDone();
      return `Snapshot ${snapshot.name} created at LSN ${snapshot.lsn}${snapshot.lun === null ? "" : ` with LUN ${snapshot.lun}`}.`;
    });
  };
  return html`<form class="inline" onSubmit=${submit} aria-label="create a snapshot">
      <label
        >Name
        <input name="snapshot" placeholder="automatic" value=${name} onInput=${(e: Event) => setName((e.target as HTMLInputElement).value)}
      /></label>
      <label
        >LUN
        <input
          name="lun"
          class="short"
          inputmode="numeric"
          placeholder=${disk.policy.lunPolicy}
          value=${lun}
          onInput=${(e: Event) => setLun((e.target as HTMLInputElement).value)}
      /></label>
      <button disabled=${action.busy}>Create snapshot</button>
    </form>
    <${Outcome} action=${action} />`;
}

function SnapshotTable({ disk, onDone }: { disk: DiskDetail; onDone: () => void }) {
  const action = useAction();
  const remove = (snapshot: SnapshotInfo) => {
    if (!confirm(`Delete snapshot ${snapshot.name} of ${disk.name}? Its blocks merge into the next volume; this cannot be undone.`)) return;
    void action.run(async () => {
      await call("DELETE", `/v1/disks/${encode(disk.name)}/snapshots/${encode(snapshot.name)}`);
      onDone();
      return `Snapshot ${snapshot.name} deleted.`;
    });
  };
  return html`<${Outcome} action=${action} /> ${
      disk.snapshots.length === 0
        ? html`<p class="muted">No snapshots.</p>`
        : html`<table class="snapshots">
            <thead>
              <tr>
                <th>Snapshot</th>
                <th>LUN</th>
                <th>LSN</th>
                <th>Created</th>
                <th></th>
              </tr>
            </thead>
            <tbody>
              ${disk.snapshots
                .slice()
                .reverse()
                .map(
                  (snapshot) =>
                    html`<tr key=${snapshot.name} data-snapshot=${snapshot.name}>
                      <td><code>${snapshot.name}</code>${snapshot.scheduled ? html` <span class="badge">scheduled</span>` : null}</td>
                      <td>${snapshot.lun ?? html`<span class="muted">–</span>`}</td>
                      <td>${snapshot.lsn.toLocaleString()}</td>
                      <td class="nowrap">${time(snapshot.createdAt)}</td>
                      <td><button class="danger small" disabled=${action.busy} onClick=${() => remove(snapshot)}>Delete</button></td>
                    </tr>`,
                )}
            </tbody>
          </table>`
    }`;
}

function CompactPanel({ disk, onDone }: { disk: DiskDetail; onDone: () => void }) {
  const action = useAction();
  const compact = (intoBaseline: boolean) =>
    void action.run(async (onProgress) => {
      const result = await callWithProgress<{ bytesFreed: number; entriesFreed: number; bytesMoved: number }>(
        `/v1/disks/${encode(disk.name)}/compact`,
        intoBaseline ? { intoBaseline: true } : {},
        onProgress,
      );
      onDone();
      return intoBaseline
        ? `Folded into the baseline: ${bytes(result.bytesMoved)} moved, ${bytes(result.bytesFreed)} freed.`
        : `Compacted: ${result.entriesFreed.toLocaleString()} entries, ${bytes(result.bytesFreed)} freed.`;
    });
  return html`<div class="inline">
      <button disabled=${action.busy} onClick=${() => compact(false)}>Compact now</button>
      <button
        disabled=${action.busy}
        onClick=${() => compact(true)}
        title="fold versions older than the window and the oldest snapshot into the baseline"
      >
        Fold into baseline
      </button>
      <span class="muted">${bytes(disk.space.logDeadBytes)} dead in the log</span>
    </div>
    <${Outcome} action=${action} />`;
}

function ArchivePanel({ disk, vaults, onDone }: { disk: DiskDetail; vaults: VaultInfo[]; onDone: () => void }) {
  const [vault, setVault] = useState("");
  const [full, setFull] = useState(false);
  const action = useAction();
  const chosen = vault === "" ? (vaults[0]?.name ?? "") : vault;
  const submit = (event: Event) => {
    event.preventDefault();
    void action.run(async (onProgress) => {
      const result = await callWithProgress<{ snapshot: string; kind?: string; bytes?: number }>(
        `/v1/disks/${encode(disk.name)}/archive`,
        full ? { vault: chosen, full: true } : { vault: chosen },
        onProgress,
      );
      onDone();
      return `Archived ${result.snapshot} to ${chosen}.`;
    });
  };
  if (vaults.length === 0) return html`<p class="muted">No vaults to archive to: <code>snaplog vault add NAME URL</code>.</p>`;
  return html`<form class="inline" onSubmit=${submit} aria-label="archive now">
      <label
        >Vault
        <select value=${chosen} onChange=${(e: Event) => setVault((e.target as HTMLSelectElement).value)}>
          ${vaults.map((one) => html`<option value=${one.name}>${one.name}</option>`)}
        </select></label
      >
      <label class="check"
        ><input type="checkbox" checked=${full} onChange=${(e: Event) => setFull((e.target as HTMLInputElement).checked)} /> full</label
      >
      <button disabled=${action.busy}>Archive now</button>
    </form>
    <${Outcome} action=${action} />`;
}
