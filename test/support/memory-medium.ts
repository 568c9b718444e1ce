/**
 * The engine's Medium over memory, for unit tests that build or damage a disk's files byte by
 * byte (the codecs, the recovery decision table): every write is durable at once (no power cut:
 * for that, see sim/simulated-medium.ts), and the test reads and replaces whole files with
 * bytes() and setBytes(). Errors are what the real medium throws (ENOENT as an IO SnaplogError).
 */
import type { Medium, MediumFile } from "../../src/engine/medium.js";
import { ErrorCodes, fromSystemError, SnaplogError } from "../../src/util/errors.js";

/** One file's bytes: `data` grows in place; `sizeBytes` is the file's length. */
interface StoredFile {
  data: Buffer;
  sizeBytes: number;
}

function noSuchFile(name: string): SnaplogError {
  return fromSystemError(Object.assign(new Error(`ENOENT: no such file or directory, open '${name}'`), { code: "ENOENT" }), { path: name });
}

function ensureCapacity(file: StoredFile, sizeBytes: number): void {
  if (file.data.length >= sizeBytes) return;
  const data = Buffer.alloc(Math.max(sizeBytes, file.data.length * 2, 4096));
  file.data.copy(data, 0, 0, file.sizeBytes);
  file.data = data;
}

class MemoryFile implements MediumFile {
  constructor(
    readonly name: string,
    private readonly file: StoredFile,
  ) {}

  async read(target: Uint8Array, positionBytes: number): Promise<number> {
    const end = Math.min(this.file.sizeBytes, positionBytes + target.length);
    if (end <= positionBytes) return 0;
    target.set(this.file.data.subarray(positionBytes, end));
    return end - positionBytes;
  }

  async writev(buffers: Uint8Array[], positionBytes: number): Promise<void> {
    let at = positionBytes;
    for (const buffer of buffers) {
      ensureCapacity(this.file, at + buffer.length);
      this.file.data.set(buffer, at);
      at += buffer.length;
      this.file.sizeBytes = Math.max(this.file.sizeBytes, at);
    }
  }

  async sync(): Promise<void> {}

  async sizeBytes(): Promise<number> {
    return this.file.sizeBytes;
  }

  async truncate(sizeBytes: number): Promise<void> {
    ensureCapacity(this.file, sizeBytes);
    if (sizeBytes < this.file.sizeBytes) this.file.data.fill(0, sizeBytes, this.file.sizeBytes);
    this.file.sizeBytes = sizeBytes;
  }

  async close(): Promise<void> {}
}

export class MemoryMedium implements Medium {
  private readonly files = new Map<string, StoredFile>();

  /** A copy of the file's bytes (throws when there is no such file). */
  bytes(name: string): Buffer {
    const file = this.files.get(name);
    if (file === undefined) throw noSuchFile(name);
    return Buffer.from(file.data.subarray(0, file.sizeBytes));
  }

  /** Creates or replaces the file with a copy of `bytes`. */
  setBytes(name: string, bytes: Uint8Array): void {
    this.files.set(name, { data: Buffer.from(bytes), sizeBytes: bytes.length });
  }

  async open(name: string, options: { create: boolean }): Promise<MediumFile> {
    let file = this.files.get(name);
    if (file === undefined) {
      if (!options.create) throw noSuchFile(name);
      file = { data: Buffer.alloc(0), sizeBytes: 0 };
      this.files.set(name, file);
    }
    return new MemoryFile(name, file);
  }

  async exists(name: string): Promise<boolean> {
    return this.files.has(name);
  }

  async remove(name: string): Promise<void> {
    this.files.delete(name);
  }

  async rename(source: string, target: string): Promise<void> {
    const file = this.files.get(source);
    if (file === undefined) throw noSuchFile(source);
    this.files.delete(source);
    this.files.set(target, file);
  }

  async list(): Promise<string[]> {
    return [...this.files.keys()].sort();
  }

  async syncDirectory(): Promise<void> {}

  async copyIn(): Promise<void> {
    throw new SnaplogError(ErrorCodes.UNSUPPORTED, "the memory medium does not import outside files");
  }
}
