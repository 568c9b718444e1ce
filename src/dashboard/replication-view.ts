/** Remote copies (lag, state, bytes shipped) and mirror legs. */
import { ago, bytes, duration } from "./format.js";
import { html } from "./html.js";
import type { LiveState } from "./live.js";

export function ReplicationView({ live }: { live: LiveState }) {
  const status = live.status;
  if (status === null) return html`<p class="muted">Reading status…</p>`;
  return html`<section>
    <h2>Remote copies</h2>
    ${
      status.replication.length === 0
        ? html`<p class="muted">
            No disk is replicated: <code>snaplog replicate DISK --to snaplog://HOST:PORT/DISK --token-file F</code>.
          </p>`
        : html`<table>
            <thead>
              <tr>
                <th>Disk</th>
                <th>To</th>
                <th>Mode</th>
                <th>State</th>
                <th>Lag</th>
                <th>Behind</th>
                <th>Shipped</th>
                <th>Acknowledged LSN</th>
                <th>Last acknowledged</th>
              </tr>
            </thead>
            <tbody>
              ${status.replication.map(
                (relation) =>
                  html`<tr data-relation=${relation.disk}>
                    <td><a href="#/disks/${encodeURIComponent(relation.disk)}">${relation.disk}</a></td>
                    <td><code>${relation.to}</code></td>
                    <td>${relation.mode}</td>
                    <td>
                      <span class="state ${relation.state}">${relation.state}</span
                      >${relation.reason === null ? null : html`<div class="muted">${relation.reason}</div>`}
                    </td>
                    <td><strong>${duration(relation.lagSeconds)}</strong></td>
                    <td>${bytes(relation.lagBytes)}</td>
                    <td>${bytes(relation.bytesShipped)}</td>
                    <td>${relation.ackedLsn ?? "–"}</td>
                    <td>${relation.lastAckAt === null ? html`<span class="muted">not yet</span>` : ago(relation.lastAckAt)}</td>
                  </tr>`,
              )}
            </tbody>
          </table>`
    }
    <h2>Mirrors</h2>
    ${
      status.mirrors.length === 0
        ? html`<p class="muted">No mirror legs: <code>snaplog policy set DISK --mirror /dev/sdX</code>.</p>`
        : html`<table>
            <thead>
              <tr>
                <th>Disk</th>
                <th>Leg</th>
                <th>State</th>
                <th title="regions set in the write-intent bitmap: written lately, or waiting for a resync">Marked in bitmap</th>
                <th>Copied</th>
                <th>Blocks repaired</th>
              </tr>
            </thead>
            <tbody>
              ${status.mirrors.map(
                (mirror) =>
                  html`<tr>
                    <td><a href="#/disks/${encodeURIComponent(mirror.disk)}">${mirror.disk}</a></td>
                    <td><code>${mirror.path}</code></td>
                    <td>
                      <span class="state ${mirror.state}">${mirror.state}</span
                      >${mirror.reason === undefined ? null : html`<div class="muted">${mirror.reason}</div>`}
                    </td>
                    <td>${bytes(mirror.dirtyBytes)}</td>
                    <td>${bytes(mirror.bytesCopied)}</td>
                    <td>${mirror.blocksRepaired}</td>
                  </tr>`,
              )}
            </tbody>
          </table>`
    }
  </section>`;
}
