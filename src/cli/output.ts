/**
 * How results reach the terminal: `--json` prints the value as JSON (one document per
 * command, stable field names from store/operations/); otherwise aligned tables and
 * "key: value" blocks for people. Errors go to stderr as one line (see main.ts).
 */
import { maxOf } from "../util/max-of.js";

export interface Column<Row> {
  header: string;
  value: (row: Row) => string;
  /** Right-align (numbers). */
  alignRight?: boolean;
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function formatTable<Row>(rows: readonly Row[], columns: readonly Column<Row>[]): string {
  const cells = rows.map((row) => columns.map((column) => column.value(row)));
  const widths = columns.map((column, index) =>
    maxOf(
      cells.map((line) => line[index].length),
      column.header.length,
    ),
  );
  const formatLine = (line: readonly string[]): string =>
    line
      .map((cell, index) => (columns[index].alignRight ? cell.padStart(widths[index]) : cell.padEnd(widths[index])))
      .join("  ")
      .trimEnd();
  return [formatLine(columns.map((column) => column.header)), ...cells.map(formatLine)].join("\n");
}

export function printTable<Row>(rows: readonly Row[], columns: readonly Column<Row>[], emptyText: string): void {
  process.stdout.write(rows.length === 0 ? `${emptyText}\n` : `${formatTable(rows, columns)}\n`);
}

/** "key: value" lines, keys padded to one width. */
export function printFields(fields: ReadonlyArray<readonly [string, string]>): void {
  const width =
    maxOf(
      fields.map(([key]) => key.length),
      0,
    ) + 1;
  process.stdout.write(fields.map(([key, value]) => `${`${key}:`.padEnd(width)} ${value}`).join("\n") + "\n");
}

export function printLine(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** "1 entry", "12,345 entries". */
export function plural(count: number, one: string, many: string): string {
  return `${count.toLocaleString("en-US")} ${count === 1 ? one : many}`;
}

/** Block lists are shown as ranges; past this many ranges, the rest is counted (--json lists all). */
const blockRangeCountMax = 32;

/** Ascending block numbers as "5-7, 12"; past blockRangeCountMax ranges, "… and N more blocks". */
export function formatBlockRanges(blocks: readonly number[]): string {
  const ranges: string[] = [];
  let blocksListed = 0;
  for (let index = 0; index < blocks.length && ranges.length < blockRangeCountMax;) {
    let end = index;
    while (end + 1 < blocks.length && blocks[end + 1] === blocks[end] + 1) end++;
    ranges.push(end === index ? String(blocks[index]) : `${blocks[index]}-${blocks[end]}`);
    blocksListed += end - index + 1;
    index = end + 1;
  }
  const rest = blocks.length - blocksListed;
  return rest === 0 ? ranges.join(", ") : `${ranges.join(", ")} … and ${plural(rest, "more block", "more blocks")} (--json lists all)`;
}
