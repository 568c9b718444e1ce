/**
 * What the disks' engines tell the store's background work, by disk name: a segment file was
 * created (the file system has less room: space checks follow, SPEC §4.2), or the history cap
 * may be passed (history-cap-runner.ts). Listeners run synchronously on the write path, so they
 * only note the disk and schedule their work.
 */
export type DiskSignal = "segment-created" | "history-cap-due";

export class DiskSignals {
  private readonly listeners = new Map<DiskSignal, Set<(disk: string) => void>>();

  /** Calls `listener` with the disk's name on each `signal`; returns the unsubscribe. */
  on(signal: DiskSignal, listener: (disk: string) => void): () => void {
    let set = this.listeners.get(signal);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(signal, set);
    }
    set.add(listener);
    return () => set.delete(listener);
  }

  emit(signal: DiskSignal, disk: string): void {
    for (const listener of this.listeners.get(signal) ?? []) listener(disk);
  }
}
