/**
 * Command-line parsing for the standalone benches (bench:replication, bench:archive, bench:mirror,
 * bench:tls): `-h`/`--help` prints the usage, and an unknown or malformed option prints what was
 * wrong and the usage (exit 2) instead of a stack trace.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

type Options = NonNullable<ParseArgsConfig["options"]>;

export function parseBenchArgs<T extends Options>(usage: string, options: T): ReturnType<typeof parseArgs<{ options: T }>>["values"] {
  const argv = process.argv.slice(2);
  if (argv.includes("-h") || argv.includes("--help")) {
    process.stdout.write(`${usage.trim()}\n`);
    process.exit(0);
  }
  try {
    return parseArgs({ args: argv, options }).values;
  } catch (error) {
    return benchUsageError(usage, error instanceof Error ? error.message : String(error));
  }
}

/** --size, --runtime and --tmpdir: the options of the benches that run fio jobs on one disk. */
export function fioJobOptions(defaults: { size: string; runtimeSeconds: number }) {
  return {
    size: { type: "string", default: defaults.size },
    runtime: { type: "string", default: String(defaults.runtimeSeconds) },
    tmpdir: { type: "string", default: "/var/tmp" },
  } as const;
}

/** Prints what was wrong with the command line and the usage; exits 2. */
export function benchUsageError(usage: string, message: string): never {
  process.stderr.write(`${message}\n\n${usage.trim()}\n`);
  process.exit(2);
}
