/**
 * A file-system quota for tests: the real directory medium, with writes that would take the
 * files past `limitBytes` (together, across every medium sharing the Quota) failing with
 * ENOSPC as a full file system answers. Extending a file by truncate is sparse and free;
 * removing a file gives its bytes back.
 */
import { promises as fs } from "node:fs";
import * as path from "node:path";
import type { Medium, MediumFile } from "../../src/engine/medium.js";
import { fromSystemError } from "../../src/util/errors.js";

export class Quota {
  usedBytes = 0;
  constructor(public limitBytes: number) {}
}

function noSpace(name: string): Error {
  return fromSystemError(Object.assign(new Error(`ENOSPC: no space left on device, write '${name}'`), { code: "ENOSPC" }), { path: name });
}

export class QuotaMedium implements Medium {
  /** Bytes each file takes: up to its last written byte. */
  private readonly written = new Map<string, number>();

  constructor(
    private readonly inner: Medium,
    private readonly directory: string,
    private readonly quota: Quota,
  ) {}

  private async writtenBytes(name: string): Promise<number> {
    let bytes = this.written.get(name);
    if (bytes === undefined) {
      // A directory (a disk's, renamed by a create or delete) holds no bytes of its own here.
      bytes = await fs.stat(path.join(this.directory, name)).then(
        (stat) => (stat.isFile() ? stat.size : 0),
        () => 0,
      );
      this.written.set(name, bytes);
      this.quota.usedBytes += bytes;
    }
    return bytes;
  }

  async open(name: string, options: { create: boolean }): Promise<MediumFile> {
    const file = await this.inner.open(name, options);
    await this.writtenBytes(name);
    return new QuotaFile(file, this, name);
  }

  async grow(name: string, endBytes: number): Promise<void> {
    const before = await this.writtenBytes(name);
    if (endBytes <= before) return;
    if (this.quota.usedBytes + (endBytes - before) > this.quota.limitBytes) throw noSpace(name);
    this.quota.usedBytes += endBytes - before;
    this.written.set(name, endBytes);
  }

  async shrink(name: string, sizeBytes: number): Promise<void> {
    const before = await this.writtenBytes(name);
    if (sizeBytes >= before) return;
    this.quota.usedBytes -= before - sizeBytes;
    this.written.set(name, sizeBytes);
  }

  exists(name: string): Promise<boolean> {
    return this.inner.exists(name);
  }

  async remove(name: string): Promise<void> {
    const before = await this.writtenBytes(name);
    await this.inner.remove(name);
    this.quota.usedBytes -= before;
    this.written.delete(name);
  }

  async rename(source: string, target: string): Promise<void> {
    const moved = await this.writtenBytes(source);
    const replaced = await this.writtenBytes(target);
    await this.inner.rename(source, target);
    this.quota.usedBytes -= replaced;
    this.written.set(target, moved);
    this.written.delete(source);
  }

  list(): Promise<string[]> {
    return this.inner.list();
  }

  syncDirectory(): Promise<void> {
    return this.inner.syncDirectory();
  }

  copyIn(sourcePath: string, name: string): Promise<void> {
    return this.inner.copyIn(sourcePath, name);
  }
}

class QuotaFile implements MediumFile {
  constructor(
    private readonly inner: MediumFile,
    private readonly medium: QuotaMedium,
    readonly name: string,
  ) {}

  read(target: Uint8Array, positionBytes: number): Promise<number> {
    return this.inner.read(target, positionBytes);
  }

  async writev(buffers: Uint8Array[], positionBytes: number): Promise<void> {
    const length = buffers.reduce((sum, buffer) => sum + buffer.length, 0);
    await this.medium.grow(this.name, positionBytes + length);
    await this.inner.writev(buffers, positionBytes);
  }

  sync(): Promise<void> {
    return this.inner.sync();
  }

  sizeBytes(): Promise<number> {
    return this.inner.sizeBytes();
  }

  async truncate(sizeBytes: number): Promise<void> {
    await this.inner.truncate(sizeBytes);
    await this.medium.shrink(this.name, sizeBytes);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
