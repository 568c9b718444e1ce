/**
 * `exec:COMMAND` (SPEC §4.3): the command run by `/bin/sh -c` with the event in its
 * environment, in a process group of its own (detached: setsid), so that at the limit — or when
 * the server stops — the whole group is killed (SIGKILL to -pid), the shell and whatever it
 * started. Its stdout and stderr are kept together, in arrival order, bounded: the newest
 * `outputBytesMax` bytes stay, older ones are only counted.
 *
 * The run ends when the shell has exited and its pipes are closed. A process that left the group
 * (its own setsid) and still holds the pipes cannot keep the run open: after the shell exits,
 * the pipes get OUTPUT_DRAIN_MS more, then are closed by us. Processes the command left behind
 * in the background when it exited normally are not killed (as cron leaves them).
 */
import { spawn } from "node:child_process";

/** After the shell exits, how long its output may still come (a background child writing last words). */
export const OUTPUT_DRAIN_MS = 500;

export interface ExecOptions {
  /** Merged over the server's environment. */
  env: Record<string, string>;
  timeoutMs: number;
  outputBytesMax: number;
  /** Aborted: the server stops; the group is killed. */
  signal: AbortSignal;
}

export interface ExecResult {
  /** The shell's exit status, or null when it ended by a signal or did not start. */
  exitStatus: number | null;
  /** The signal that ended it, if any (SIGKILL at the limit). */
  signal: string | null;
  timedOut: boolean;
  /** Killed because the server stopped. */
  stopped: boolean;
  /** Why it could not be started, if it could not. */
  spawnError: string | null;
  /** The tail of stdout and stderr, interleaved as they came. */
  output: string;
  /** All the output's bytes, kept or not. */
  outputBytes: number;
}

/** The newest `bytesMax` bytes of a stream: older chunks go as new ones come. */
class OutputTail {
  private chunks: Buffer[] = [];
  private keptBytes = 0;
  totalBytes = 0;

  constructor(private readonly bytesMax: number) {}

  push(chunk: Buffer): void {
    this.totalBytes += chunk.length;
    this.chunks.push(chunk);
    this.keptBytes += chunk.length;
    while (this.keptBytes - this.chunks[0].length >= this.bytesMax) this.keptBytes -= this.chunks.shift()!.length;
  }

  text(): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - this.bytesMax)).toString("utf8");
  }
}

export function runExec(command: string, options: ExecOptions): Promise<ExecResult> {
  return new Promise((resolve) => {
    const output = new OutputTail(options.outputBytesMax);
    let timedOut = false;
    let stopped = false;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let finished = false;
    const child = spawn("/bin/sh", ["-c", command], {
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...options.env },
    });
    const killGroup = (): void => {
      if (child.pid === undefined || exit !== undefined) return;
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // The group is gone already.
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, options.timeoutMs);
    const onStop = (): void => {
      stopped = true;
      killGroup();
    };
    options.signal.addEventListener("abort", onStop, { once: true });
    if (options.signal.aborted) onStop();
    let drainTimer: NodeJS.Timeout | undefined;
    const finish = (spawnError: string | null): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      clearTimeout(drainTimer);
      options.signal.removeEventListener("abort", onStop);
      child.stdout.destroy();
      child.stderr.destroy();
      resolve({
        exitStatus: exit?.code ?? null,
        signal: exit?.signal ?? null,
        timedOut,
        stopped,
        spawnError,
        output: output.text(),
        outputBytes: output.totalBytes,
      });
    };
    child.stdout.on("data", (chunk: Buffer) => output.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => output.push(chunk));
    child.once("error", (error) => finish(error.message));
    child.once("exit", (code, signal) => {
      exit = { code, signal };
      drainTimer = setTimeout(() => finish(null), OUTPUT_DRAIN_MS);
    });
    child.once("close", () => finish(null));
  });
}
