/**
 * Named points at the engine's durability steps. A test harness (the power-loss simulator)
 * attaches a hook and can cut the power exactly there; without a hook a point costs one
 * property check. The hook is synchronous: cutting the power marks the medium dead, so the
 * step after the point fails as it would after a real power cut.
 */
export const CrashPoints = [
  /** A batch's data runs were written (not synced). */
  "batch:data-written",
  /** A sync batch: data synced, journal record not yet written. */
  "batch:data-synced",
  /** A batch's journal record was written (not synced). */
  "batch:journal-written",
  /** A sync batch: journal synced, callers not yet answered. */
  "batch:journal-synced",
  "background-sync:data-synced",
  "background-sync:journal-synced",
  /** Rotation: everything synced, the next journal not yet created. */
  "rotation:synced",
  /** Rotation: the next journal exists with its header; appends not yet switched. */
  "rotation:journal-created",
  /** The checkpoint is in checkpoint.tmp, synced, not yet renamed. */
  "checkpoint:written",
  /** The checkpoint is renamed into place; the old journal not yet removed. */
  "checkpoint:renamed",
  /** A wholly free segment is about to be removed. */
  "segment-release:before-remove",
  /** Compaction freed a step's entries (in memory; their slots retire). */
  "compaction:step",
  /** Fold: the view is in the baseline, not yet synced. */
  "fold:copied",
  /** Fold: the baseline is synced, FOLD_DONE not yet written. */
  "fold:baseline-synced",
  /** Rollback: the new versions' data is written, the records not yet. */
  "rollback:data-written",
] as const;

export type CrashPoint = (typeof CrashPoints)[number];

export type CrashHook = (point: CrashPoint) => void;
