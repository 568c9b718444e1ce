/** The event log (what the policies and the server did and saw), newest first, live. */
import { html } from "./html.js";
import { time } from "./format.js";
import type { StoreEvent } from "./types.js";
import { useState } from "preact/hooks";

const SHOWN_MAX = 200;

/** Events that mean something needs a look. */
const WARNINGS = new Set(["space-high", "replication-lag", "mirror-degraded", "scrub-damage", "hook-failed", "replica-refused"]);

export function EventList({ events, disk }: { events: StoreEvent[]; disk?: string }) {
  const [type, setType] = useState("");
  const types = [...new Set(events.map((event) => event.type))].sort();
  const shown: StoreEvent[] = [];
  for (let index = events.length - 1; index >= 0 && shown.length < SHOWN_MAX; index--) {
    const event = events[index];
    if (disk !== undefined && event.disk !== disk) continue;
    if (type !== "" && event.type !== type) continue;
    shown.push(event);
  }
  return html`<div class="events">
    <label class="filter"
      >Type
      <select value=${type} onChange=${(e: Event) => setType((e.target as HTMLSelectElement).value)}>
        <option value="">all</option>
        ${types.map((one) => html`<option value=${one}>${one}</option>`)}
      </select></label
    >
    ${
      shown.length === 0
        ? html`<p class="muted">No events yet.</p>`
        : html`<table class="event-log">
            <thead>
              <tr>
                <th>Time</th>
                <th>Type</th>
                <th>Disk</th>
                <th>What happened</th>
              </tr>
            </thead>
            <tbody>
              ${shown.map(
                (event) =>
                  html`<tr key=${event.seq} class=${WARNINGS.has(event.type) ? "warning" : ""} data-seq=${event.seq}>
                    <td class="nowrap">${time(event.time)}</td>
                    <td><span class="badge">${event.type}</span></td>
                    <td>${event.disk === undefined ? "" : html`<a href="#/disks/${encodeURIComponent(event.disk)}">${event.disk}</a>`}</td>
                    <td>${event.message}</td>
                  </tr>`,
              )}
            </tbody>
          </table>`
    }
  </div>`;
}
