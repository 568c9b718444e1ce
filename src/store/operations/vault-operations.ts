import type { ProgressCallback } from "./progress.js";

export interface VaultAddRequest {
  name: string;
  /** file:///path, s3://bucket/prefix?endpoint=URL&region=R, snaplog://HOST:PORT */
  url: string;
  /** s3: an AWS shared-credentials file, copied into the store (owner-only). */
  credentialsFile?: string;
  /** snaplog://: the peer's API token, kept in the store (owner-only). */
  token?: string;
}

export interface VaultInfo {
  name: string;
  /** The URL without secrets. */
  url: string;
  kind: "directory" | "s3" | "appliance";
  credentials: boolean;
  token: boolean;
  addedAt: string;
}

/** One archived stream of a chain. */
export interface VaultItemInfo {
  index: number;
  /** The snapshot the stream ends at. */
  snapshot: string;
  lsn: number;
  time: string;
  kind: "full" | "incremental";
  compacted: boolean;
  bytes: number;
  /** Its manifest is written (every part is in the vault): it can be restored. */
  complete: boolean;
  /** The source's snapshots inside the stream (they are restored too). */
  snapshots: string[];
}

export interface VaultChainInfo {
  storeId: string;
  diskId: string;
  disk: string;
  chainId: string;
  items: VaultItemInfo[];
}

export interface ArchiveRequest {
  disk: string;
  vault: string;
  /** The snapshot shipped (default: a new one, archive-<time>). */
  snapshot?: string;
  /** Start a new chain with a full stream. */
  full?: boolean;
  /** Newest version per block per partition (default true). */
  compact?: boolean;
  /** Bytes per vault object (default 64 MiB; 1 MiB .. 64 MiB). */
  partBytes?: number;
}

export interface ArchiveResult {
  disk: string;
  vault: string;
  snapshot: string;
  chainId: string;
  index: number;
  kind: "full" | "incremental";
  from: string | null;
  compacted: boolean;
  parts: number;
  /** Stream bytes in all. */
  bytes: number;
  /** Bytes uploaded by this run. */
  bytesSent: number;
  /** Parts a previous, interrupted run had put in the vault already (checked, not sent again). */
  partsResumed: number;
}

export interface VaultRestoreRequest {
  vault: string;
  /** DISK, STOREID/DISK, with an optional @SNAPSHOT. */
  source: string;
  /** The new disk's name (default: the archived disk's). */
  as?: string;
  /** A point in time inside the chain's non-compacted streams. */
  at?: string;
}

export interface VaultRestoreResult {
  disk: string;
  storeId: string;
  chainId: string;
  streams: number;
  snapshots: string[];
  bytes: number;
}

/** Vaults and archives (SPEC §5.3). */
export interface VaultOperations {
  addVault(request: VaultAddRequest): Promise<VaultInfo>;
  listVaults(): Promise<VaultInfo[]>;
  removeVault(name: string): Promise<void>;
  /** The chains in the vault (of DISK when given: a name or STOREID/NAME). */
  listVaultChains(vault: string, disk?: string): Promise<VaultChainInfo[]>;
  archive(request: ArchiveRequest, onProgress?: ProgressCallback): Promise<ArchiveResult>;
  restoreFromVault(request: VaultRestoreRequest, onProgress?: ProgressCallback): Promise<VaultRestoreResult>;
}
