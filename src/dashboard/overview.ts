/** The appliance at a glance: space, every disk, the write rate, replication and mirrors. */
import { html } from "./html.js";
import { bytes, duration, percent, rate } from "./format.js";
import type { LiveState } from "./live.js";
import { SpaceBar } from "./space-bar.js";
import { TimeChart } from "./time-chart.js";
import { seriesColor } from "./colors.js";

export function Overview({ live }: { live: LiveState }) {
  const status = live.status;
  if (status === null) return html`<p class="muted">Reading the appliance's status…</p>`;
  const diskNames = status.disks.map((disk) => disk.name);
  const times = live.samples.map((sample) => sample.t);
  return html`<section>
    <div class="cards">
      <div class="card">
        <h3>Disks</h3>
        <p class="big">${status.diskCount}</p>
        <p class="muted">${status.snapshotCount} snapshots</p>
      </div>
      <div class="card">
        <h3>File system</h3>
        <p class="big">${percent(status.usedBytes, status.usedBytes + status.freeBytes)}</p>
        <p class="muted">${bytes(status.usedBytes)} used, ${bytes(status.freeBytes)} free</p>
      </div>
      <div class="card">
        <h3>Checksum errors</h3>
        <p class=${status.checksumErrors > 0 ? "big bad" : "big"}>${status.checksumErrors}</p>
        <p class="muted">since start</p>
      </div>
      <div class="card">
        <h3>Up</h3>
        <p class="big">${duration(status.uptimeSeconds)}</p>
        <p class="muted">version ${status.version}</p>
      </div>
    </div>

    <h2>Disks</h2>
    ${
      status.disks.length === 0
        ? html`<p class="muted">No disks yet: <code>snaplog disk create NAME --size 10G</code>.</p>`
        : html`<table class="disks">
            <thead>
              <tr>
                <th>Disk</th>
                <th>Size</th>
                <th>LUN</th>
                <th>Snapshots</th>
                <th>Space in the log</th>
                <th>History</th>
                <th>Mirror</th>
                <th>Replication</th>
              </tr>
            </thead>
            <tbody>
              ${status.disks.map((disk) => {
                const mirror = status.mirrors.find((one) => one.disk === disk.name);
                const relation = status.replication.find((one) => one.disk === disk.name);
                return html`<tr data-disk=${disk.name}>
                  <td>
                    <a href="#/disks/${encodeURIComponent(disk.name)}"><strong>${disk.name}</strong></a>
                  </td>
                  <td>${bytes(disk.sizeBytes)}</td>
                  <td>${disk.lun}</td>
                  <td>${disk.snapshotCount}</td>
                  <td class="wide">
                    <${SpaceBar}
                      parts=${[
                        { label: "live", bytes: disk.logBytes, className: "live" },
                        { label: "unused in segment files", bytes: Math.max(0, disk.segmentBytes - disk.logBytes), className: "free" },
                      ]}
                    />
                  </td>
                  <td>${disk.historySeconds === 0 ? "off" : duration(disk.historySeconds)}</td>
                  <td>
                    ${mirror === undefined ? html`<span class="muted">none</span>` : html`<span class="state ${mirror.state}">${mirror.state}</span>`}
                  </td>
                  <td>
                    ${
                      relation === undefined
                        ? html`<span class="muted">none</span>`
                        : html`<span class="state ${relation.state}">${relation.state}</span> lag ${duration(relation.lagSeconds)}`
                    }
                  </td>
                </tr>`;
              })}
            </tbody>
          </table>`
    }

    <div class="charts">
      <${TimeChart}
        title="Write rate (all disks, from /metrics)"
        times=${times}
        format=${rate}
        series=${diskNames.map((name, index) => ({
          label: name,
          color: seriesColor(index),
          values: live.samples.map((sample) => sample.disks[name]?.writeBytesPerSecond ?? null),
        }))}
      />
      <${TimeChart}
        title="Live bytes in the log"
        times=${times}
        format=${bytes}
        series=${diskNames.map((name, index) => ({
          label: name,
          color: seriesColor(index),
          values: live.samples.map((sample) => sample.disks[name]?.liveBytes ?? null),
        }))}
      />
    </div>

    <h2>Served</h2>
    <ul class="endpoints">
      ${status.nbd.map((line) => html`<li><code>${line}</code></li>`)}
    </ul>
  </section>`;
}
