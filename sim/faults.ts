/**
 * What a simulator run injects, named once for `npm run sim` (sim/run.ts) and test/sim.test.ts:
 * the sabotages, the fault rates of `--faults all`, and the `--faults` text both ways, so that a
 * failure's replay command runs exactly what failed.
 */
import type { Sabotage } from "../src/engine/index.js";
import { NO_FAULTS, type FaultRates } from "./simulated-medium.js";

/** Every sabotage (the record fails to compile when the engine gains one it does not name). */
const SABOTAGE_NAMES = {
  "skip-data-sync": true,
  "trust-record-without-crc": true,
  "reuse-slots-early": true,
  "skip-tail-data-check": true,
} satisfies Record<Sabotage, true>;
export const SABOTAGES = Object.keys(SABOTAGE_NAMES) as readonly Sabotage[];

/** Every fault at once: `--faults all`, and what test/sim.test.ts runs. */
export const ALL_FAULTS: FaultRates = { readError: 0.01, bitFlip: 0.005, misdirect: 0.005, metadataFlip: 0.002, capacityBytes: 50_000 };

/** The `--faults` keys, in the order formatFaults writes them. */
const FAULT_KEYS = [
  ["read", "readError"],
  ["flip", "bitFlip"],
  ["misdirect", "misdirect"],
  ["meta", "metadataFlip"],
  ["capacity", "capacityBytes"],
] as const satisfies readonly (readonly [string, keyof FaultRates])[];

/** `--faults`: none (or absent), all, or a comma list of KEY=NUMBER (read, flip, misdirect, meta, capacity). */
export function parseFaults(text: string | undefined): FaultRates {
  if (text === undefined || text === "none") return NO_FAULTS;
  if (text === "all") return ALL_FAULTS;
  const rates: FaultRates = { ...NO_FAULTS };
  for (const part of text.split(",")) {
    const [key, value] = part.split("=");
    const number = Number(value);
    if (value === undefined || !Number.isFinite(number) || number < 0) throw new Error(`--faults: "${part}" is not KEY=NUMBER`);
    const field = FAULT_KEYS.find(([name]) => name === key)?.[1];
    if (field === undefined) throw new Error(`--faults: unknown fault "${key}" (${FAULT_KEYS.map(([name]) => name).join(", ")})`);
    rates[field] = number;
  }
  return rates;
}

/** The `--faults` text that parseFaults reads back as `rates`: "none", or the faults that differ from none. */
export function formatFaults(rates: FaultRates): string {
  const parts = FAULT_KEYS.filter(([, field]) => rates[field] !== NO_FAULTS[field]).map(([name, field]) => `${name}=${rates[field]}`);
  return parts.length === 0 ? "none" : parts.join(",");
}
