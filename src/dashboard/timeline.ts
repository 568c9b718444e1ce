/**
 * A disk's timeline: its snapshots as marks on a time axis, the history window (every write
 * kept: any moment in it can be restored) as a shaded band up to now, and the baseline at the
 * start. Clicking inside the window picks that moment for the restore form.
 */
import { html } from "./html.js";
import { time } from "./format.js";
import type { DiskDetail } from "./types.js";

const WIDTH = 1000;
const HEIGHT = 96;
const LEFT = 70;
const RIGHT = 20;
const AXIS_Y = 58;
/** Least distance between two labels on one row (viewBox units); a label with no room is left out (its mark and tooltip stay). */
const LABEL_ROOM = 90;
/** The axis shows at least this span, so a young disk's marks do not sit on top of each other. */
const SPAN_MIN_MS = 5 * 60_000;

interface TimelineProps {
  disk: DiskDetail;
  nowMs: number;
  onPick?: (ms: number) => void;
}

export function Timeline({ disk, nowMs, onPick }: TimelineProps) {
  const created = new Date(disk.createdAt).getTime();
  const windowStart = disk.space.window.timeFirst === null ? created : new Date(disk.space.window.timeFirst).getTime();
  const snapshotTimes = disk.snapshots.map((snapshot) => new Date(snapshot.createdAt).getTime());
  // From the oldest thing worth showing (the window's start, the oldest snapshot) to now, with a margin before it.
  let first = windowStart;
  for (const t of snapshotTimes) first = Math.min(first, t);
  const span = Math.max(SPAN_MIN_MS, (nowMs - first) * 1.08);
  const start = nowMs - span;
  const x = (ms: number) => LEFT + ((Math.min(Math.max(ms, start), nowMs) - start) / span) * (WIDTH - LEFT - RIGHT);
  const bandStart = x(Math.max(windowStart, start));
  // Labels on two rows, newest first (the newest matter most), each only where it has room.
  const labelRow = new Array<number | null>(disk.snapshots.length).fill(null);
  const rowEnds = [Infinity, Infinity];
  for (let index = disk.snapshots.length - 1; index >= 0; index--) {
    const at = x(snapshotTimes[index]);
    const row = rowEnds.findIndex((end) => end - at >= LABEL_ROOM);
    if (row < 0) continue;
    labelRow[index] = row;
    rowEnds[row] = at;
  }

  const pick = (event: MouseEvent) => {
    if (onPick === undefined) return;
    const svg = event.currentTarget as SVGSVGElement;
    const box = svg.getBoundingClientRect();
    const at = ((event.clientX - box.left) / box.width) * WIDTH;
    if (at < bandStart || at > WIDTH - RIGHT) return;
    onPick(start + ((at - LEFT) / (WIDTH - LEFT - RIGHT)) * span);
  };

  return html`<svg class="timeline" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="timeline of ${disk.name}" onClick=${pick}>
    <rect class="window" x=${bandStart} y=${AXIS_Y - 18} width=${Math.max(2, x(nowMs) - bandStart)} height="24">
      <title>history window: every write since ${time(new Date(windowStart).toISOString())} (click to pick a moment to restore)</title>
    </rect>
    <line class="axis" x1=${LEFT} x2=${WIDTH - RIGHT} y1=${AXIS_Y + 6} y2=${AXIS_Y + 6} />
    <text class="label" x="4" y=${AXIS_Y + 10}>${disk.hasBaseline ? "baseline" : "empty"}</text>
    <text class="tick" x=${LEFT} y=${HEIGHT - 4}>${time(new Date(start).toISOString())}</text>
    <text class="tick" x=${WIDTH - RIGHT} y=${HEIGHT - 4} text-anchor="end">now</text>
    ${disk.snapshots.map((snapshot, index) => {
      const at = x(snapshotTimes[index]);
      const row = labelRow[index];
      return html`<g class=${snapshot.scheduled ? "snapshot scheduled" : "snapshot"} data-snapshot=${snapshot.name}>
        <line x1=${at} x2=${at} y1=${AXIS_Y - 22} y2=${AXIS_Y + 6} />
        <circle cx=${at} cy=${AXIS_Y - 22} r="4" />
        ${row === null ? null : html`<text x=${at} y=${row === 0 ? 14 : 28} text-anchor="middle">${snapshot.name}</text>`}
        <title>
          ${snapshot.name} · ${time(snapshot.createdAt)} · LSN ${snapshot.lsn}${snapshot.lun === null ? "" : ` · LUN ${snapshot.lun}`}
        </title>
      </g>`;
    })}
  </svg>`;
}
