import type { StreamPoint } from "../../stream/index.js";

/** What a sender says of its disk when it contacts a receiver (SPEC §5.4). */
export interface ReplicaHello {
  /** The replica's name on the receiver. */
  disk: string;
  source: { storeId: string; diskId: string; diskName: string };
  /** The source's snapshots (oldest first): a diverged replica resyncs from the newest one both have. */
  snapshots: StreamPoint[];
}

export interface ReplicaState {
  /** empty: no such disk yet (a full stream makes it); replica: this source's replica; diverged: the same disk (by id) written on its own (after a failover). */
  state: "empty" | "replica" | "diverged";
  /** The source LSN the replica holds (replica). */
  ackedLsn: number | null;
  /** The receiver's snapshots of that disk, by id. */
  snapshots: StreamPoint[];
}

export interface ReplicaAck {
  disk: string;
  ackedLsn: number;
  ackedTimeMs: number;
  /** Snapshots the batch made. */
  snapshots: string[];
  blockCount: number;
}

export type RelationMode = "continuous" | "compacted";

export interface ReplicateRequest {
  disk: string;
  /** snaplog://HOST:PORT/DISK */
  to: string;
  token: string;
  mode: RelationMode;
  /** compacted: ms between shipments. */
  intervalMs?: number;
  /** continuous: the most of the source server's time shipping may take while hosts write (1-100, default 7). */
  maxLoadPercent?: number;
}

export interface RelationInfo {
  disk: string;
  to: string;
  mode: RelationMode;
  intervalMs: number;
  /** continuous: the most of the source server's time shipping takes while hosts write (100: it never yields). */
  maxLoadPercent: number;
  state: "connected" | "retrying" | "ended" | "starting";
  reason: string | null;
  ackedLsn: number | null;
  /** When the replica last acknowledged (ISO 8601); null: not since this server started. */
  lastAckAt: string | null;
  /** Age of the oldest write the replica has not acknowledged (0 when caught up). */
  lagSeconds: number;
  lagBytes: number;
  /** On the wire, after compression, since the relation was set up. */
  bytesShipped: number;
  /** Written by hosts on the source since the relation was set up. */
  bytesWritten: number;
  createdAt: string;
}

/** Remote copy, the receiving side (SPEC §5.4): what other appliances call over TCP; the Store serves it through the API, the CLI never calls it. */
export interface ReplicaOperations {
  replicaHello(hello: ReplicaHello): Promise<ReplicaState>;
  /** A stream from the replica's acknowledged point (or a full one for an empty replica), applied whole. */
  replicaBatch(disk: string, source: AsyncIterable<Buffer | Uint8Array | string>): Promise<ReplicaAck>;
  /** A diverged disk goes back to the newest snapshot both sides hold (the state replaced kept as a snapshot) and becomes the replica from there. */
  replicaResync(disk: string, source: ReplicaHello["source"], commonSnapshotId: string, sourceLsn: number): Promise<ReplicaState>;
  replicaDeleteSnapshots(disk: string, sourceDiskId: string, ids: string[]): Promise<string[]>;
}

/** Remote copy, the sending side and failover: relations set up, stopped and listed; a replica promoted. */
export interface ReplicationOperations {
  /** Failover: the replica becomes an ordinary read-write disk; its relation ends at the sender's next contact. */
  promoteDisk(disk: string): Promise<{ disk: string; promotedAt: string }>;
  replicate(request: ReplicateRequest): Promise<RelationInfo>;
  stopReplication(disk: string): Promise<void>;
  listRelations(): Promise<RelationInfo[]>;
}
