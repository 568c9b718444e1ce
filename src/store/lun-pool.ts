/**
 * The store's LUN pool (SPEC §4.5 `pool`): LUNs released by disks with the pool policy, kept in
 * store.json as sorted, disjoint, non-adjacent ranges [first, last]. Ranges, not a list: a disk
 * whose snapshots were deleted in order returns one range however many there were, so store.json
 * stays small and its rewrite at every create or delete stays cheap. Pure functions on values.
 */

export type LunRange = readonly [first: number, last: number];

/** The lowest pooled LUN, if any. */
export function poolLowest(pool: readonly LunRange[]): number | undefined {
  return pool.length === 0 ? undefined : pool[0][0];
}

export function poolHas(pool: readonly LunRange[], lun: number): boolean {
  return pool.some(([first, last]) => first <= lun && lun <= last);
}

/** The pool without `lun` (the same array when it is not pooled). */
export function poolWithout(pool: readonly LunRange[], lun: number): LunRange[] {
  const index = pool.findIndex(([first, last]) => first <= lun && lun <= last);
  if (index < 0) return [...pool];
  const [first, last] = pool[index];
  const pieces: LunRange[] = [];
  if (first < lun) pieces.push([first, lun - 1]);
  if (lun < last) pieces.push([lun + 1, last]);
  return [...pool.slice(0, index), ...pieces, ...pool.slice(index + 1)];
}

/** The pool with `lun` added, merged with the ranges it touches. */
export function poolWith(pool: readonly LunRange[], lun: number): LunRange[] {
  if (poolHas(pool, lun)) return [...pool];
  let index = 0;
  while (index < pool.length && pool[index][1] < lun) index++;
  const before = index > 0 && pool[index - 1][1] === lun - 1 ? pool[index - 1] : undefined;
  const after = index < pool.length && pool[index][0] === lun + 1 ? pool[index] : undefined;
  const merged: LunRange = [before?.[0] ?? lun, after?.[1] ?? lun];
  const start = before === undefined ? index : index - 1;
  const end = after === undefined ? index : index + 1;
  return [...pool.slice(0, start), merged, ...pool.slice(end)];
}

/** Count of LUNs in the pool. */
export function poolSize(pool: readonly LunRange[]): number {
  let count = 0;
  for (const [first, last] of pool) count += last - first + 1;
  return count;
}
