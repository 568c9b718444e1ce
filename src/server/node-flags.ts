/**
 * Node flags the server runs best with. They must be on node's command line (V8 sizes its heap
 * before any of our code runs, and NODE_OPTIONS refuses this one), so the `snaplog` launcher's
 * shebang, `npm start` and the benchmark runner pass them; `serve` says so when they are missing.
 *
 * --initial-old-space-size=128: without it V8 ran a full mark-compact every 40–60 ms under a
 * 1 GB/s stream of 1 MiB writes (its old-generation limit sits about 23 MB above a 31 MB live
 * heap), about a fifth of the server's CPU; with it, 2 in 6 s (BENCHMARKS.md, analysis).
 * The heap may grow to 128 MB before its first full collection: memory the appliance has.
 */
export const SERVER_NODE_FLAGS: readonly string[] = ["--initial-old-space-size=128"];

/** The flags this process was started without. */
export function missingServerNodeFlags(): string[] {
  return SERVER_NODE_FLAGS.filter((flag) => !process.execArgv.includes(flag));
}
