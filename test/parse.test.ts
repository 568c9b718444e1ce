/**
 * Goal: the parsers accept every form SPEC §3.2 promises and refuse everything else with
 * INVALID_ARGUMENT and a one-line reason. Method: examples for the documented forms and the
 * known traps, then fast-check round-trips (format → parse gives the value back).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { formatBytes, formatDuration, formatHostPort, parseDuration, parseHostPort, parseSize } from "../src/util/parse.js";
import { ErrorCodes, SnaplogError } from "../src/util/errors.js";

function assertInvalid(action: () => unknown): void {
  assert.throws(action, (error: unknown) => {
    assert.ok(error instanceof SnaplogError);
    assert.equal(error.code, ErrorCodes.INVALID_ARGUMENT);
    assert.ok(!error.message.includes("\n"), "one-line reason");
    return true;
  });
}

test("parseSize accepts the documented forms", () => {
  assert.equal(parseSize("4096"), 4096);
  assert.equal(parseSize("0"), 0);
  assert.equal(parseSize("512K"), 512 * 1024);
  assert.equal(parseSize("512k"), 512 * 1024);
  assert.equal(parseSize("10G"), 10 * 2 ** 30);
  assert.equal(parseSize("1TiB"), 2 ** 40);
  assert.equal(parseSize("3MiB"), 3 * 2 ** 20);
  assert.equal(parseSize("1.5G"), 1.5 * 2 ** 30);
  assert.equal(parseSize("100B"), 100);
  assert.equal(parseSize(" 2 GiB "), 2 * 2 ** 30);
});

test("parseSize refuses garbage, negatives, fractional bytes and ambiguous units", () => {
  for (const text of [
    "",
    "abc",
    "-1",
    "-4K",
    "1.5",
    "0.3K",
    "10GB",
    "10 XB",
    "1e6",
    "0x10",
    "1,000",
    "12K34",
    "9".repeat(30),
    "99999999P",
  ]) {
    assertInvalid(() => parseSize(text));
  }
});

test("parseDuration accepts 0, s, m, h, d and refuses the rest", () => {
  assert.equal(parseDuration("0"), 0);
  assert.equal(parseDuration("90s"), 90);
  assert.equal(parseDuration("15m"), 900);
  assert.equal(parseDuration("24h"), 86_400);
  assert.equal(parseDuration("7d"), 604_800);
  for (const text of ["", "-5s", "1.5h", "10y", "h", "5 minutes"]) assertInvalid(() => parseDuration(text));
});

test("parseHostPort reads IPv4, bracketed IPv6, names and a bare port", () => {
  assert.deepEqual(parseHostPort("127.0.0.1:10809"), { host: "127.0.0.1", port: 10809 });
  assert.deepEqual(parseHostPort("[::1]:10809"), { host: "::1", port: 10809 });
  assert.deepEqual(parseHostPort("localhost:0"), { host: "localhost", port: 0 });
  assert.deepEqual(parseHostPort(":10809"), { host: "0.0.0.0", port: 10809 });
  assert.deepEqual(parseHostPort(":10809", "127.0.0.1"), { host: "127.0.0.1", port: 10809 });
  for (const text of ["", "10809", "host:", "host:65536", "::1:10809", "a b:1", "[::1]", "host:-1"]) {
    assertInvalid(() => parseHostPort(text));
  }
});

test("formatBytes is readable", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatBytes(4096), "4 KiB");
  assert.equal(formatBytes(1.5 * 2 ** 30), "1.5 GiB");
  assert.equal(formatBytes(2 ** 40), "1 TiB");
});

const units = [
  ["", 1],
  ["K", 2 ** 10],
  ["KiB", 2 ** 10],
  ["M", 2 ** 20],
  ["MiB", 2 ** 20],
  ["G", 2 ** 30],
  ["GiB", 2 ** 30],
  ["T", 2 ** 40],
  ["TiB", 2 ** 40],
] as const;

test("property: parseSize(count + unit) = count * multiplier", () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 8191 }), fc.constantFrom(...units), (count, [unit, multiplier]) => {
      assert.equal(parseSize(`${count}${unit}`), count * multiplier);
    }),
  );
});

test("property: formatBytes of an exact multiple parses back to the same bytes", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 1023 }), fc.integer({ min: 0, max: 4 }), (count, power) => {
      const bytes = count * 1024 ** power;
      assert.equal(parseSize(formatBytes(bytes).replace(" ", "")), bytes);
    }),
  );
});

test("property: formatBytes stays within 5% of any size", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), (bytes) => {
      const [number, unit] = formatBytes(bytes).split(" ");
      const multiplier = { B: 1, KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30, TiB: 2 ** 40, PiB: 2 ** 50 }[unit]!;
      assert.ok(Math.abs(Number(number) * multiplier - bytes) <= bytes * 0.05);
    }),
  );
});

test("property: parseDuration(formatDuration(s)) = s", () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 10 ** 9 }), (seconds) => {
      assert.equal(parseDuration(formatDuration(seconds)), seconds);
    }),
  );
});

test("property: parseHostPort(formatHostPort(x)) = x", () => {
  const host = fc.oneof(fc.ipV4(), fc.ipV6(), fc.domain());
  fc.assert(
    fc.property(host, fc.integer({ min: 0, max: 65_535 }), (hostText, port) => {
      assert.deepEqual(parseHostPort(formatHostPort({ host: hostText, port })), { host: hostText, port });
    }),
  );
});

test("property: parseSize never throws anything but INVALID_ARGUMENT", () => {
  fc.assert(
    fc.property(fc.string(), (text) => {
      try {
        const bytes = parseSize(text);
        assert.ok(Number.isSafeInteger(bytes) && bytes >= 0);
      } catch (error) {
        assert.ok(error instanceof SnaplogError && error.code === ErrorCodes.INVALID_ARGUMENT);
      }
    }),
  );
});
