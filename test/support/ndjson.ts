import assert from "node:assert/strict";

/** The values of an NDJSON text (every line, the last one included, ends with a newline). */
export function parseNdjson(text: string): unknown[] {
  if (text.length === 0) return [];
  assert.ok(text.endsWith("\n"), `NDJSON ends with a newline: ${JSON.stringify(text.slice(-40))}`);
  return text
    .slice(0, -1)
    .split("\n")
    .map((line) => JSON.parse(line) as unknown);
}

/** Every item of an async iterable, in order. */
export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}
