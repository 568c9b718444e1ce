/**
 * The largest of `values`, or `floor` when there are none or all are smaller. A loop, not
 * `Math.max(...values)`: a spread puts every value on the stack, and a count users control
 * (LUNs, rows, records) overflows it (issue 7; eslint.config.js forbids the spread).
 */
export function maxOf(values: Iterable<number>, floor: number): number {
  let largest = floor;
  for (const value of values) if (value > largest) largest = value;
  return largest;
}
