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
/** About how wide a label's character is, in viewBox units (11 px text on a 1000-unit-wide box shown ~1200 px wide). */
const CHAR_WIDTH = 5.6;
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
  // Labels on two rows, newest first (the newest matter most), each only where it does not touch
  // the one to its right on that row (its mark and tooltip stay either way).
  const labels = new Array<{ row: number; x: number; anchor: string } | null>(disk.snapshots.length).fill(null);
  const rowLeft = [WIDTH, WIDTH];
  for (let index = disk.snapshots.length - 1; index >= 0; index--) {
    const at = x(snapshotTimes[index]);
    const width = disk.snapshots[index].name.length * CHAR_WIDTH;
    // Kept inside the box: near an edge the label hangs to the inside of its mark.
    const left = Math.min(Math.max(at - width / 2, 2), WIDTH - 2 - width);
    const row = rowLeft.findIndex((edge) => left + width + 8 <= edge);
    if (row < 0) continue;
    labels[index] = { row, x: left, anchor: "start" };
    rowLeft[row] = left;
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
      const label = labels[index];
      return html`<g class=${snapshot.scheduled ? "snapshot scheduled" : "snapshot"} data-snapshot=${snapshot.name}>
        <line x1=${at} x2=${at} y1=${AXIS_Y - 22} y2=${AXIS_Y + 6} />
        <circle cx=${at} cy=${AXIS_Y - 22} r="4" />
        ${label === null ? null : html`<text x=${label.x} y=${label.row === 0 ? 14 : 28} text-anchor=${label.anchor}>${snapshot.name}</text>`}
        <title>
          ${snapshot.name} · ${time(snapshot.createdAt)} · LSN ${snapshot.lsn}${snapshot.lun === null ? "" : ` · LUN ${snapshot.lun}`}
        </title>
      </g>`;
    })}
  </svg>`;
}
