/**
 * The progress bar of long-running commands (restore, compact, scrub): shown on stderr only when it
 * is a terminal and the output is not --json, so pipes and scripts stay quiet (SPEC §3.2).
 * The bar starts at the first progress report, when the total is known.
 */
import cliProgress from "cli-progress";
import type { ProgressCallback } from "../store/operations/index.js";
import { formatBytes } from "../util/parse.js";

export interface ProgressDisplay {
  onProgress: ProgressCallback;
  /** Removes the bar (call once the operation settled, success or not). */
  stop(): void;
}

export interface ProgressOptions {
  /** What runs, e.g. "restore vm1". */
  label: string;
  /** How done/total read: bytes ("12 MiB / 40 MiB") or plain steps ("3 / 16"). */
  unit: "bytes" | "steps";
}

const quiet: ProgressDisplay = { onProgress: () => undefined, stop: () => undefined };

/** A bar for `options` on a terminal; quiet without options, with --json, or when piped. */
export function startProgress(
  options: ProgressOptions | undefined,
  json: boolean,
  stream: NodeJS.WriteStream = process.stderr,
): ProgressDisplay {
  if (options === undefined || json || stream.isTTY !== true) return quiet;
  const format = options.unit === "bytes" ? formatBytes : String;
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: `${options.label} [{bar}] {percentage}% | {doneText} / {totalText} | ETA {eta_formatted}`,
      hideCursor: true,
      clearOnComplete: true,
      fps: 10,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    onProgress: (done, total) => {
      const payload = { doneText: format(done), totalText: format(total) };
      if (!started) {
        started = true;
        bar.start(total, done, payload);
        return;
      }
      bar.setTotal(total);
      bar.update(done, payload);
    },
    stop: () => {
      if (started) bar.stop();
    },
  };
}
