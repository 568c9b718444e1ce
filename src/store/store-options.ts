/** How a store is opened (Store.open): its mode, the medium under each directory, where it logs. */
import type { Medium } from "../engine/index.js";

export interface StoreLogger {
  info?(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** The medium of a directory of the store, given its absolute path. */
export type MediumFor = (directory: string) => Medium;

export interface StoreOpenOptions {
  mode?: "server" | "direct";
  /**
   * The medium of each directory the store writes in (default: the directory itself): each
   * disk's directory (its engine's files and disk.json), the hidden directory a new disk is
   * built in, and the disks directory, where a new disk is renamed into place and a deleted one
   * renamed away. Tests put a quota or a fault-injecting medium here.
   */
  mediumFor?: MediumFor;
  logger?: StoreLogger;
  /**
   * The store's clock (ms since the epoch): when a schedule is set (no slot before it is owed),
   * the "now" of `policy show`, the time of each event. Default Date.now; the server passes its
   * policy runner's clock, so one clock drives the scheduler and what the store records of it.
   */
  nowMs?: () => number;
}
