import { writeAllInlineWhenSmall } from "../util/write-all.js";
import { constants as fsConstants, promises as fs } from "node:fs";
import * as path from "node:path";
import { fromSystemError } from "../util/errors.js";
import { directWritable, openDirect, writeDirect } from "../util/direct-write.js";
import { PositionedReads } from "../util/positioned-reads.js";

/**
 * The storage medium under the engine: a directory of files. The real one is the file system
 * (DirectoryMedium); the power-loss simulator's (sim/simulated-medium.ts) keeps
 * written-but-unsynced bytes apart so a power cut can lose or tear them. Every method throws
 * SnaplogError (IO, NO_SPACE) on failure.
 *
 * Contract: `writev` makes bytes readable at once but durable only after `sync` of that file;
 * `rename`, `open` with `create` and `remove` are durable only after `syncDirectory`.
 */
export interface MediumFile {
  readonly name: string;
  read(target: Uint8Array, positionBytes: number): Promise<number>;
  /** Writes every buffer back to back from positionBytes, with one syscall where possible. */
  writev(buffers: Uint8Array[], positionBytes: number): Promise<void>;
  /** fdatasync: written data (and the size) durable. */
  sync(): Promise<void>;
  sizeBytes(): Promise<number>;
  truncate(sizeBytes: number): Promise<void>;
  close(): Promise<void>;
}

export interface OpenOptions {
  create: boolean;
  /**
   * A hint: the file takes large writes of data that is written once and read back rarely (the
   * log's segment files). The real medium writes such data around the page cache
   * (direct-write.ts); its durability contract is unchanged.
   */
  writeAround?: boolean;
}

export interface Medium {
  /** Opens a file for reading and writing, creating it (empty) when `create` is set. */
  open(name: string, options: OpenOptions): Promise<MediumFile>;
  exists(name: string): Promise<boolean>;
  remove(name: string): Promise<void>;
  rename(source: string, target: string): Promise<void>;
  list(): Promise<string[]>;
  syncDirectory(): Promise<void>;
  /** Creates `name` as a copy of an outside file (cloned where the file system can). */
  copyIn(sourcePath: string, name: string): Promise<void>;
}

class FileOnDisk implements MediumFile {
  constructor(
    readonly name: string,
    private readonly handle: fs.FileHandle,
    /** The same file opened O_DIRECT for writes (writeAround files where the file system allows it). */
    private readonly direct?: fs.FileHandle,
  ) {
    this.reads = new PositionedReads(handle);
  }

  private readonly reads: PositionedReads;

  async read(target: Uint8Array, positionBytes: number): Promise<number> {
    try {
      return await this.reads.readAll(target, positionBytes);
    } catch (error) {
      throw fromSystemError(error, { path: this.name });
    }
  }

  async writev(buffers: Uint8Array[], positionBytes: number): Promise<void> {
    try {
      const lengthBytes = totalBytes(buffers);
      if (this.direct !== undefined && directWritable(positionBytes, lengthBytes)) {
        if (await writeDirect(this.direct, buffers, positionBytes)) return;
      }
      await writeAllInlineWhenSmall(this.handle, buffers, positionBytes, lengthBytes);
    } catch (error) {
      throw fromSystemError(error, { path: this.name });
    }
  }

  async sync(): Promise<void> {
    try {
      await this.handle.datasync();
    } catch (error) {
      throw fromSystemError(error, { path: this.name });
    }
  }

  async sizeBytes(): Promise<number> {
    return (await this.handle.stat()).size;
  }

  async truncate(sizeBytes: number): Promise<void> {
    try {
      await this.handle.truncate(sizeBytes);
    } catch (error) {
      throw fromSystemError(error, { path: this.name });
    }
  }

  async close(): Promise<void> {
    await this.reads.drained();
    await Promise.all([this.handle.close(), this.direct?.close()]);
  }
}

function totalBytes(buffers: Uint8Array[]): number {
  let sum = 0;
  for (const buffer of buffers) sum += buffer.length;
  return sum;
}

/** The real medium: files in one directory. */
export class DirectoryMedium implements Medium {
  constructor(
    readonly directory: string,
    /** Honour the writeAround hint (SNAPLOG_DIRECT_WRITES=0 turns it off, for comparison runs). */
    private readonly writeAround: boolean = process.env.SNAPLOG_DIRECT_WRITES !== "0",
  ) {}

  async open(name: string, options: OpenOptions): Promise<MediumFile> {
    const flags = options.create ? fsConstants.O_RDWR | fsConstants.O_CREAT : fsConstants.O_RDWR;
    try {
      const handle = await fs.open(path.join(this.directory, name), flags, 0o644);
      const direct = options.writeAround === true && this.writeAround ? await openDirect(path.join(this.directory, name)) : undefined;
      return new FileOnDisk(name, handle, direct);
    } catch (error) {
      throw fromSystemError(error, { path: path.join(this.directory, name) });
    }
  }

  async exists(name: string): Promise<boolean> {
    try {
      await fs.access(path.join(this.directory, name));
      return true;
    } catch {
      return false;
    }
  }

  async remove(name: string): Promise<void> {
    await fs.rm(path.join(this.directory, name), { force: true });
  }

  async rename(source: string, target: string): Promise<void> {
    try {
      await fs.rename(path.join(this.directory, source), path.join(this.directory, target));
    } catch (error) {
      throw fromSystemError(error, { path: path.join(this.directory, source) });
    }
  }

  async list(): Promise<string[]> {
    return fs.readdir(this.directory);
  }

  async syncDirectory(): Promise<void> {
    const handle = await fs.open(this.directory, fsConstants.O_RDONLY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  async copyIn(sourcePath: string, name: string): Promise<void> {
    try {
      await fs.copyFile(sourcePath, path.join(this.directory, name), fsConstants.COPYFILE_FICLONE);
    } catch (error) {
      throw fromSystemError(error, { path: sourcePath });
    }
  }
}
