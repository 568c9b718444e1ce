import { ErrorCodes, SnaplogError } from "../../util/errors.js";
import type { DiskState } from "../tables/disk-state.js";

export interface HistoryWindow {
  historySeconds: number;
  /** Oldest point-in-time view available, and its time (ms; 0 when before every entry). */
  lsnFirst: number;
  timeMsFirst: number;
  lsnLast: number;
}

/** What the window rules need to know about a disk at one moment. */
export interface WindowInput {
  diskName: string;
  state: DiskState;
  /** The current volume's LSN (published batches only). */
  lsnVisible: number;
  historySeconds: number;
  nowMs: number;
}

/**
 * The history window now: every view from lsnFirst to the current one can be attached.
 * lsnFirst is the later of the recorded horizon and the disk as it was historySeconds ago;
 * with a zero window only the current view is in it.
 */
export function historyWindow(input: WindowInput): HistoryWindow {
  const { state, lsnVisible, historySeconds } = input;
  let lsnFirst = lsnVisible;
  if (historySeconds > 0)
    lsnFirst = Math.max(state.lsnHorizon, Math.min(state.times.lsnAtTime(input.nowMs - historySeconds * 1000, lsnVisible), lsnVisible));
  return { historySeconds, lsnFirst, timeMsFirst: lsnFirst === 0 ? 0 : state.times.timeOf(lsnFirst), lsnLast: lsnVisible };
}

/**
 * Checks that the view at `lsn` can be attached now: the baseline (LSN 0), inside the
 * history window, or a snapshot's cut or a pinned view. Throws OUTSIDE_WINDOW (naming the
 * window) otherwise.
 */
export function checkViewAvailable(input: WindowInput, lsn: number, asked = `LSN ${lsn}`): void {
  if (!Number.isSafeInteger(lsn) || lsn < 0)
    throw new SnaplogError(ErrorCodes.INVALID_ARGUMENT, `${asked} is not a valid LSN`, { disk: input.diskName });
  const window = historyWindow(input);
  if (lsn > window.lsnLast) {
    throw new SnaplogError(
      ErrorCodes.OUTSIDE_WINDOW,
      `${asked} of disk ${input.diskName} is in the future: its newest LSN is ${window.lsnLast}`,
      { disk: input.diskName, lsn },
    );
  }
  if (lsn === 0 || lsn >= window.lsnFirst || input.state.hasCutOrPinAt(lsn)) return;
  throw outsideWindow(input.diskName, asked, window, lsn);
}

/**
 * The LSN of the view at `timeMs`: the time must lie inside the window (the last
 * `historySeconds`, up to now) and so must its view. Older times are refused even where a
 * snapshot holds the same state: a snapshot is addressed by its name (entry times before the
 * horizon are kept coarsely, so an older time could name the wrong view).
 */
export function viewAtTime(input: WindowInput, timeMs: number): number {
  const asked = new Date(timeMs).toISOString();
  if (timeMs > input.nowMs)
    throw new SnaplogError(ErrorCodes.OUTSIDE_WINDOW, `${asked} is in the future for disk ${input.diskName}`, { disk: input.diskName });
  const lsn = input.state.times.lsnAtTime(timeMs, input.lsnVisible);
  const window = historyWindow(input);
  if (timeMs < input.nowMs - input.historySeconds * 1000 || lsn < window.lsnFirst) throw outsideWindow(input.diskName, asked, window, lsn);
  return lsn;
}

function outsideWindow(diskName: string, asked: string, window: HistoryWindow, lsn: number): SnaplogError {
  return new SnaplogError(
    ErrorCodes.OUTSIDE_WINDOW,
    `${asked} is outside the history window of disk ${diskName}: ${describeWindow(window)}`,
    {
      disk: diskName,
      lsn,
      hint: "attach a snapshot instead (snaplog snapshot list), or keep more history (snaplog policy set DISK --history 24h)",
    },
  );
}

function describeWindow(window: HistoryWindow): string {
  if (window.historySeconds === 0) return `its history window is 0 (only the current volume, LSN ${window.lsnLast}, and its snapshots)`;
  const since = window.timeMsFirst === 0 ? "its creation" : new Date(window.timeMsFirst).toISOString();
  return `it keeps every write from ${since} (LSN ${window.lsnFirst}) to now (LSN ${window.lsnLast}), a ${window.historySeconds} s window; older views are its snapshots`;
}
