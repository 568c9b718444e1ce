import type { SnaplogError } from "../../util/errors.js";
import type { SnapshotCut } from "../tables/snapshot-cut.js";

/**
 * What the commit pipeline takes: operations queued by callers, grouped into batches. Every
 * op is settled exactly once, when its batch is durable enough for it (or failed).
 *
 * Callers build each op whole, settle functions included (`noop` until it is queued), with its
 * fields always in the order of its type below: one hidden class per kind of op keeps the commit
 * path's property reads monomorphic. Building an op by spreading a request into a new object
 * cost 6–7 µs of a 20 µs 4 KiB write at QD 32 (docs/performance.md).
 */
export type Settle = { resolve: () => void; reject: (error: SnaplogError) => void };

/**
 * The ops of one client request (an unaligned write: its partial edges and its whole blocks):
 * all of them land, or none. A failed edge read fails the group.
 */
export interface OpGroup {
  failure: SnaplogError | undefined;
}

export type WriteOp = Settle & {
  type: "write";
  lbaFirst: number;
  blockCount: number;
  data: Buffer;
  crcs: Uint32Array;
  group: OpGroup | undefined;
};
export type ZeroOp = Settle & { type: "zero" | "trim"; lbaFirst: number; blockCount: number; noHole: boolean; group: OpGroup | undefined };
/** A cut at the log's end, or at `lsn` (an earlier view the caller checked and pinned). */
export type SnapshotOp = Settle & { type: "snapshot"; name: string; lun: number; timeMs: number; lsn?: number; cut?: SnapshotCut };
export type FlushOp = Settle & { type: "flush" };
/** Bytes inside one block: merged with the block's newest content at commit time. */
export type PartialOp = Settle & { type: "partial"; lba: number; offsetBytes: number; data: Buffer; group: OpGroup };
/**
 * A metadata record (snapshot delete, horizon, fold begin/end): encoded at commit time,
 * written with a sync, and `apply` runs once it is durable, before the batch is answered.
 */
export type ControlOp = Settle & { type: "control"; encode: (timeMs: number) => Buffer; apply: () => void };
/** Rolls the current volume back to the view at lsnTarget; always alone in its batch. */
export type RollbackOp = Settle & {
  type: "rollback";
  lsnTarget: number;
  name: string;
  lun: number;
  result?: { cut: SnapshotCut; blockCount: number };
};
/** An op that failed before assignment (already answered); it takes no part in the batch. */
export type VoidOp = Settle & { type: "void" };
export type Op = WriteOp | ZeroOp | SnapshotOp | FlushOp | PartialOp | ControlOp | RollbackOp | VoidOp;

/** The group of a client-request op (undefined for ops that belong to none). */
export function groupOf(op: Op): OpGroup | undefined {
  return op.type === "write" || op.type === "zero" || op.type === "trim" || op.type === "partial" ? op.group : undefined;
}

export class Batch {
  readonly ops: Op[] = [];
  blockCount = 0;
  sync = false;
  hasPartial = false;
  /** A sealed batch takes no more ops (it waits in the queue, or holds an exclusive op). */
  sealed = false;
  /** The entries' time when the caller gives it (an import keeps the source's times); else the clock at commit. */
  timeMs: number | undefined = undefined;
}

/** A contiguous run of slots in one segment and the buffers that fill it. */
export interface SlotRun {
  slotFirst: number;
  slotCount: number;
  buffers: Buffer[];
}

/** The entries a batch appends, as parallel columns (what its ENTRIES record holds). */
export class EntryColumns {
  lbas: Float64Array;
  slots: Uint32Array;
  crcs: Uint32Array;
  /** Entry ids, for rollback of a failed batch. */
  ids: Uint32Array;
  count = 0;

  constructor(capacity: number) {
    this.lbas = new Float64Array(capacity);
    this.slots = new Uint32Array(capacity);
    this.crcs = new Uint32Array(capacity);
    this.ids = new Uint32Array(capacity);
  }

  push(id: number, lba: number, slot: number, crc: number): void {
    if (this.count === this.lbas.length) this.grow();
    this.ids[this.count] = id;
    this.lbas[this.count] = lba;
    this.slots[this.count] = slot;
    this.crcs[this.count] = crc;
    this.count++;
  }

  private grow(): void {
    const capacity = Math.max(16, this.lbas.length * 2);
    this.lbas = grown(this.lbas, new Float64Array(capacity));
    this.slots = grown(this.slots, new Uint32Array(capacity));
    this.crcs = grown(this.crcs, new Uint32Array(capacity));
    this.ids = grown(this.ids, new Uint32Array(capacity));
  }
}

function grown<T extends Float64Array | Uint32Array>(old: T, larger: T): T {
  larger.set(old);
  return larger;
}

export function noop(): void {}
