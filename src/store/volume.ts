/**
 * What a host can attach: the contract between the protocol layers (nbd/) and the store.
 * Every method takes byte offsets and lengths; alignment to the block size is NOT required
 * (unaligned writes are read-modify-write inside the store). Errors are SnaplogError:
 * OUT_OF_RANGE past the end, READ_ONLY on writes to a read-only volume, CORRUPT when a stored
 * checksum fails, NO_SPACE when the medium is full, CLOSED when the disk went away, IO otherwise.
 */
export interface WriteOptions {
  /** Durable before the promise resolves (NBD FUA). */
  fua: boolean;
}

export interface ZeroOptions extends WriteOptions {
  /** The caller wants allocated zeros, not a hole (NBD_CMD_FLAG_NO_HOLE). */
  noHole: boolean;
}

/**
 * One run of a block-status answer, in the store's own terms of allocation: data (neither
 * flag), allocated zeros (`zero`), or nothing stored (`hole` and `zero`: a trimmed or never
 * written block of a disk without a baseline). The protocol layers map them to their bits.
 */
export interface StatusExtent {
  lengthBytes: number;
  /** No data is stored for these bytes (reading them costs nothing). */
  hole: boolean;
  /** These bytes read as zeros. */
  zero: boolean;
}

export interface Volume {
  /** Export name this volume was resolved from, e.g. "vm1@daily". */
  readonly name: string;
  /** The disk it shows, for per-disk figures (the export name when absent). */
  readonly diskName?: string;
  /** One line for NBD_OPT_LIST / nbdinfo --list, e.g. "disk vm1, LUN 3". */
  readonly description: string;
  readonly sizeBytes: number;
  /** The disk's block size: the preferred I/O size and the unit of the log. */
  readonly blockSizeBytes: number;
  readonly readOnly: boolean;
  read(offsetBytes: number, lengthBytes: number): Promise<Buffer>;
  write(offsetBytes: number, data: Buffer, options: WriteOptions): Promise<void>;
  writeZeroes(offsetBytes: number, lengthBytes: number, options: ZeroOptions): Promise<void>;
  trim(offsetBytes: number, lengthBytes: number, options: WriteOptions): Promise<void>;
  /** Everything written before the call is durable when it resolves. */
  flush(): Promise<void>;
  /**
   * Allocation status of [offset, offset+length); may answer a shorter prefix, and stops
   * after about `extentCountMax` extents when given (NBD REQ_ONE asks for one).
   */
  blockStatus(offsetBytes: number, lengthBytes: number, extentCountMax?: number): Promise<StatusExtent[]>;
  /**
   * The connection that resolved this volume is done with it (after NBD_OPT_INFO, or when
   * the connection ends). Called once; the volume must not be used afterwards. A
   * point-in-time volume drops its pin here, so compaction may free what it saw.
   */
  release(): void;
}

export interface ExportInfo {
  name: string;
  description: string;
}

/** Finds volumes by NBD export name (SPEC §3.1). */
export interface VolumeResolver {
  /** Throws NOT_FOUND (or INVALID_ARGUMENT for a malformed name). */
  resolve(exportName: string): Volume;
  /** Every attachable volume, for NBD_OPT_LIST. */
  list(): ExportInfo[];
  /** Export used when a client asks for the empty name "". Undefined: refuse. */
  readonly defaultExport?: string;
}
