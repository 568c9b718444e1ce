/**
 * Parsers for what people type: sizes, durations, host:port pairs and counts. Each one
 * either returns a value or throws SnaplogError INVALID_ARGUMENT with a one-line reason,
 * so the CLI and the API reject bad input before anything touches the store.
 */
import { invalidArgument } from "./errors.js";

const KIB = 1024n;

/** Binary multipliers by unit, lower-cased. "KB"-style decimal units are refused as ambiguous. */
const sizeMultiplierByUnit: ReadonlyMap<string, bigint> = new Map([
  ["", 1n],
  ["b", 1n],
  ["k", KIB],
  ["kib", KIB],
  ["m", KIB ** 2n],
  ["mib", KIB ** 2n],
  ["g", KIB ** 3n],
  ["gib", KIB ** 3n],
  ["t", KIB ** 4n],
  ["tib", KIB ** 4n],
  ["p", KIB ** 5n],
  ["pib", KIB ** 5n],
]);

const sizePattern = /^(\d+)(?:\.(\d+))?\s*([A-Za-z]*)$/;
const sizeTextLengthMax = 64;

/**
 * "4096", "512K", "10G", "1TiB", "1.5G" → bytes. The result must be a whole number of
 * bytes and a safe integer; negative numbers and unknown units are refused.
 */
export function parseSize(text: string, what = "size"): number {
  const trimmed = text.trim();
  if (trimmed.length === 0 || trimmed.length > sizeTextLengthMax) {
    throw invalidArgument(`invalid ${what} "${text}": expected a number with an optional unit (K, M, G, T, KiB, MiB, GiB, TiB)`);
  }
  const match = sizePattern.exec(trimmed);
  if (match === null) {
    const reason = trimmed.startsWith("-")
      ? "must not be negative"
      : "expected a number with an optional unit (K, M, G, T, KiB, MiB, GiB, TiB)";
    throw invalidArgument(`invalid ${what} "${text}": ${reason}`);
  }
  const [, wholeDigits, fractionDigits = "", unit] = match;
  const multiplier = sizeMultiplierByUnit.get(unit.toLowerCase());
  if (multiplier === undefined) {
    throw invalidArgument(`invalid ${what} "${text}": unknown unit "${unit}" (use K, M, G, T or KiB, MiB, GiB, TiB; all binary)`);
  }
  const scale = 10n ** BigInt(fractionDigits.length);
  const numerator = (BigInt(wholeDigits) * scale + BigInt(fractionDigits === "" ? "0" : fractionDigits)) * multiplier;
  if (numerator % scale !== 0n) {
    throw invalidArgument(`invalid ${what} "${text}": not a whole number of bytes`);
  }
  const bytes = numerator / scale;
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw invalidArgument(`invalid ${what} "${text}": too large`);
  }
  return Number(bytes);
}

const secondsByDurationUnit: ReadonlyMap<string, number> = new Map([
  ["", 1],
  ["s", 1],
  ["m", 60],
  ["h", 3600],
  ["d", 86_400],
  ["w", 604_800],
]);

const durationPattern = /^(\d+)\s*([A-Za-z]*)$/;

/** "0", "90s", "15m", "24h", "7d" (also a bare number of seconds, and "w") → seconds. */
export function parseDuration(text: string, what = "duration"): number {
  const trimmed = text.trim();
  const match = trimmed.length <= sizeTextLengthMax ? durationPattern.exec(trimmed) : null;
  if (match === null) {
    throw invalidArgument(`invalid ${what} "${text}": expected a whole number with a unit s, m, h or d (e.g. 90s, 15m, 24h, 7d)`);
  }
  const [, digits, unit] = match;
  const secondsPerUnit = secondsByDurationUnit.get(unit);
  if (secondsPerUnit === undefined) {
    throw invalidArgument(`invalid ${what} "${text}": unknown unit "${unit}" (use s, m, h, d or w)`);
  }
  const seconds = Number(digits) * secondsPerUnit;
  if (!Number.isSafeInteger(seconds)) throw invalidArgument(`invalid ${what} "${text}": too large`);
  return seconds;
}

export interface HostPort {
  host: string;
  port: number;
}

/**
 * "127.0.0.1:10809", "[::1]:10809", "localhost:10809", ":10809" (host defaultHost, which
 * is every IPv4 interface unless the caller says otherwise). Port 0 asks for an ephemeral port.
 */
export function parseHostPort(text: string, defaultHost = "0.0.0.0"): HostPort {
  const trimmed = text.trim();
  const bracketed = /^\[([0-9A-Fa-f:.%a-zA-Z]+)\]:(\d{1,5})$/.exec(trimmed);
  const plain = /^([A-Za-z0-9.-]*):(\d{1,5})$/.exec(trimmed);
  const match = bracketed ?? plain;
  if (match === null) {
    throw invalidArgument(`invalid address "${text}": expected HOST:PORT, [IPV6]:PORT or :PORT`);
  }
  const port = Number(match[2]);
  if (port > 65_535) throw invalidArgument(`invalid address "${text}": port must be 0-65535`);
  const host = match[1] === "" ? defaultHost : match[1];
  return { host, port };
}

/** "host:port", with IPv6 hosts in brackets: the inverse of parseHostPort. */
export function formatHostPort({ host, port }: HostPort): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A non-negative safe integer, e.g. a LUN. */
export function parseCount(text: string, what = "number"): number {
  if (!/^\d{1,15}$/.test(text.trim())) {
    throw invalidArgument(`invalid ${what} "${text}": expected a whole number >= 0`);
  }
  return Number(text.trim());
}

const byteUnits = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"] as const;

/**
 * Bytes for humans: "512 B", "4 KiB", "1.5 GiB". Exact multiples of a unit print without
 * decimals (and parseSize reads them back exactly); others round to one decimal.
 */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return String(bytes);
  let unitIndex = 0;
  let value = bytes;
  while (value >= 1024 && unitIndex < byteUnits.length - 1) {
    value /= 1024;
    unitIndex += 1;
  }
  const text = Number.isInteger(value) ? String(value) : value.toFixed(1);
  return `${text} ${byteUnits[unitIndex]}`;
}

/** Seconds for humans, in the units parseDuration accepts: "0s", "90s", "15m", "1h", "7d". */
export function formatDuration(seconds: number): string {
  if (seconds === 0) return "0s";
  for (const [unit, size] of [
    ["d", 86_400],
    ["h", 3600],
    ["m", 60],
  ] as const) {
    if (seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}
