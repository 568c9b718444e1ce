/**
 * `npm run sim`: the power-loss and disk-fault simulator (sim/driver.ts) over many seeds, or
 * one seed replayed with its whole trace; with --scale, the scale mode (sim/scale-driver.ts).
 */
import { parseArgs } from "node:util";
import type { Sabotage } from "../src/engine/index.js";
import { runSeed, type SimResult } from "./driver.js";
import { ALL_FAULTS, formatFaults, parseFaults, SABOTAGES } from "./faults.js";
import { runScaleSeed } from "./scale-driver.js";

const usage = `Usage: npm run sim -- [--seeds N] [--start S] [--ops M] [--faults LIST] [--sabotage NAME] [--mirror]
       npm run sim -- --seed S [--ops M] [--faults LIST] [--sabotage NAME] [--mirror]
       npm run sim -- --scale [--seeds N] [--start S] [--seed S] [--writes W]

Runs random workloads against the engine on a simulated disk that loses, tears and damages
what it was given, cuts the power at random moments and at named crash points, and checks
every recovery against the model. Deterministic: a seed replays exactly.

  --seeds N        how many seeds (default 100), from --start (default 1)
  --seed S         run seed S alone and print what it did (the trace), and why it failed
  --ops M          operations per seed (default 60)
  --faults LIST    none (default), all, or a comma list of read=P (read errors), flip=P (rot in
                   data), misdirect=P (writes landing elsewhere), meta=P (rot in the journal and
                   checkpoint), capacity=BYTES (P: probability per read or write)
                   all: ${formatFaults(ALL_FAULTS)} (what npm test runs)
                   e.g. --faults read=0.01,flip=0.005,misdirect=0.005,capacity=65536
  --mirror         give the disk a mirror leg on a second simulated medium that shares the
                   power (cuts fall between the two legs' writes); whenever the leg is in sync
                   its file must equal the current volume
  --sabotage NAME  break one rule on purpose (${SABOTAGES.join(", ")}):
                   the simulator must find failing seeds
  --scale          scale mode: each seed writes up to W one-block records (default 1300000),
                   enough to fill the journal to its maximum, cuts the power once (at the
                   journal's rotation or near the end) and checks every block and snapshot;
                   about 30 s and 1 GB of memory per seed
  --writes W       writes per scale seed
  -h, --help       this text

Ends with a line "N seeds, F failures"; exit code 1 when F > 0.
`;

function integer(text: string | undefined, fallback: number, what: string): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text)) throw new Error(`${what}: expected a whole number, got "${text}"`);
  return Number(text);
}

function printTrace(result: SimResult): void {
  for (const line of result.trace) process.stdout.write(`  ${line}\n`);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seeds: { type: "string" },
      start: { type: "string" },
      seed: { type: "string" },
      ops: { type: "string" },
      faults: { type: "string" },
      sabotage: { type: "string" },
      mirror: { type: "boolean" },
      scale: { type: "boolean" },
      writes: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help === true) {
    process.stdout.write(usage);
    return 0;
  }
  if (values.scale === true) return runScale(values);
  const ops = integer(values.ops, 60, "--ops");
  const faults = parseFaults(values.faults);
  const sabotage = values.sabotage as Sabotage | undefined;
  const mirror = values.mirror === true;
  const replayFlags = `${sabotage === undefined ? "" : ` --sabotage ${sabotage}`}${mirror ? " --mirror" : ""}`;
  if (sabotage !== undefined && !SABOTAGES.includes(sabotage))
    throw new Error(`--sabotage: unknown "${sabotage}" (${SABOTAGES.join(", ")})`);
  if (values.seed !== undefined) {
    const result = await runSeed({ seed: integer(values.seed, 0, "--seed"), ops, faults, sabotage, mirror });
    printTrace(result);
    process.stdout.write(
      result.ok
        ? `seed ${result.seed}: ok (${result.powerCuts} power cuts, ${result.faults} faults)\n`
        : `seed ${result.seed}: FAILED: ${result.failure}\n`,
    );
    process.stdout.write(`1 seeds, ${result.ok ? 0 : 1} failures\n`);
    return result.ok ? 0 : 1;
  }
  const count = integer(values.seeds, 100, "--seeds");
  const start = integer(values.start, 1, "--start");
  let failures = 0;
  let powerCuts = 0;
  const startedMs = Date.now();
  for (let seed = start; seed < start + count; seed++) {
    const result = await runSeed({ seed, ops, faults, sabotage, mirror });
    powerCuts += result.powerCuts;
    if (!result.ok) {
      failures++;
      process.stdout.write(
        `seed ${seed}: FAILED: ${result.failure}\n  replay: npm run sim -- --seed ${seed} --ops ${ops} --faults ${formatFaults(faults)}${replayFlags}\n`,
      );
    }
    if (process.stderr.isTTY && (seed - start + 1) % 100 === 0)
      process.stderr.write(`\r${seed - start + 1}/${count} seeds, ${failures} failures`);
  }
  if (process.stderr.isTTY) process.stderr.write("\n");
  process.stdout.write(`(${powerCuts} power cuts in ${((Date.now() - startedMs) / 1000).toFixed(1)} s)\n`);
  process.stdout.write(`${count} seeds, ${failures} failures\n`);
  return failures > 0 ? 1 : 0;
}

async function runScale(values: { seeds?: string; start?: string; seed?: string; writes?: string }): Promise<number> {
  const writes = integer(values.writes, 1_300_000, "--writes");
  const first = values.seed !== undefined ? integer(values.seed, 0, "--seed") : integer(values.start, 1, "--start");
  const count = values.seed !== undefined ? 1 : integer(values.seeds, 10, "--seeds");
  let failures = 0;
  for (let seed = first; seed < first + count; seed++) {
    const startedMs = Date.now();
    const result = await runScaleSeed({ seed, writes });
    const seconds = ((Date.now() - startedMs) / 1000).toFixed(1);
    if (result.ok) process.stdout.write(`seed ${seed}: ok, ${result.summary} (${seconds} s)\n`);
    else {
      failures++;
      process.stdout.write(
        `seed ${seed}: FAILED: ${result.failure}\n  ${result.summary}\n  replay: npm run sim -- --scale --seed ${seed} --writes ${writes}\n`,
      );
    }
  }
  process.stdout.write(`${count} seeds, ${failures} failures\n`);
  return failures > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`sim: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  },
);
