/**
 * A sender keeps several continuous batches in flight (each on its own request), so a replica's
 * batches may be received side by side and finish arriving in any order. Each still applies only
 * from exactly the acknowledged LSN; this is where a batch waits for the one before it.
 *
 * A batch enters once its header is read (its source range known) and leaves when it is applied
 * or refused. Before applying, it waits for every batch in flight that ends where it starts (its
 * predecessor): when that one is applied, this one is next; when that one is refused, this one is
 * refused too (it starts past the acknowledged LSN) and the sender starts over from there. A batch
 * with no predecessor in flight goes at once: applied if it starts at the acknowledged LSN,
 * refused otherwise (old, replayed, or one missing), as before.
 */
export interface BatchTicket {
  /** Resolves when no batch this one must follow is still in flight. */
  turn(): Promise<void>;
  leave(): void;
}

interface Entered {
  fromLsn: number;
  toLsn: number;
  order: number;
  left: Promise<void>;
  markLeft: () => void;
}

export class BatchOrder {
  private readonly inFlight = new Map<string, Set<Entered>>();
  private entered = 0;

  enter(disk: string, fromLsn: number, toLsn: number): BatchTicket {
    let markLeft: () => void = () => undefined;
    const left = new Promise<void>((resolve) => (markLeft = resolve));
    const self: Entered = { fromLsn, toLsn, order: this.entered++, left, markLeft };
    let batches = this.inFlight.get(disk);
    if (batches === undefined) this.inFlight.set(disk, (batches = new Set()));
    batches.add(self);
    const all = batches;
    return {
      turn: async () => {
        for (;;) {
          // The predecessor ends where this one starts; of two that both start and end there (a
          // cut with no writes, sent twice), the one that entered first goes first.
          const before = [...all].find(
            (other) => other !== self && other.toLsn === self.fromLsn && (other.fromLsn < other.toLsn || other.order < self.order),
          );
          if (before === undefined) return;
          await before.left;
        }
      },
      leave: () => {
        all.delete(self);
        if (all.size === 0 && this.inFlight.get(disk) === all) this.inFlight.delete(disk);
        self.markLeft();
      },
    };
  }
}
