/**
 * A storage medium for the power-loss simulator: the engine's Medium interface over memory,
 * deterministic from a seed. It keeps what is durable apart from what is only written:
 *
 *   - file data: every write lands in `current` at once and is remembered as unsynced;
 *     sync() makes all of a file's unsynced writes durable;
 *   - the directory (create, rename, remove): changes are visible at once and durable after
 *     syncDirectory(); a power cut keeps a prefix of the unsynced changes, in order (an
 *     ordered metadata journal, as ext4's), and loses the rest;
 *   - at a power cut every unsynced write is kept, lost or torn: each 512-byte sector of it is
 *     kept or lost on its own, as the seed picks (sectors themselves are atomic), and a file
 *     whose creation is lost is lost with its data.
 *
 * Faults, each at a rate the run sets: a read answered with EIO, a bit flipped in stored
 * bytes (current and durable alike: the medium rotted), a write misdirected to another sector
 * of the same file, and ENOSPC once the files would exceed a capacity. Every fault injected is
 * recorded, so a checker can tell an explained failure from a bug.
 *
 * powerCut() freezes the medium: every call after it fails with EIO ("powered off"), so an
 * engine still running on it stops at its next step. afterPowerCut() is the disk after the
 * reboot: a new medium holding what survived. Media of one machine (the log's and a mirror
 * leg's) share a PowerSupply: their calls are counted together and the power goes off for both.
 */
import type { Medium, MediumFile } from "../src/engine/index.js";
import { ErrorCodes, fromSystemError, SnaplogError } from "../src/util/errors.js";
import { Prng, SECTOR_BYTES } from "../test/support/crash-model.js";

export interface FaultRates {
  /** Probability that a read fails with EIO. */
  readError: number;
  /** Probability, per write, that a random stored bit somewhere is flipped afterwards. */
  bitFlip: number;
  /** Probability that a write lands on another sector-aligned offset of its file. */
  misdirect: number;
  /** Probability, per write, that a stored bit of the journal or checkpoint is flipped afterwards. */
  metadataFlip: number;
  /** Capacity of the medium in bytes (sum of file sizes); Infinity: no limit. */
  capacityBytes: number;
}

export const NO_FAULTS: FaultRates = { readError: 0, bitFlip: 0, misdirect: 0, metadataFlip: 0, capacityBytes: Infinity };

/**
 * Rot (bitFlip) and misdirected writes hit data files: a checksum per block tells every
 * damaged block. Rot of the journal and checkpoint is its own fault (metadataFlip), because
 * one case there no checksum can tell — the last record rotted looks like a torn append —
 * loses an acknowledged batch: the journal keeps no second copy of its tail (docs/testing.md).
 */
const FAULTABLE_FILE = /^segment-\d+\.dat$/;
const METADATA_FILE = /^(journal-\d+\.log|checkpoint\.ckpt)$/;

/** A fault the medium injected (a checker explains failures with these). */
export type InjectedFault =
  | { kind: "bit-flip"; file: string; offsetBytes: number }
  | { kind: "misdirect"; file: string; intendedBytes: number; actualBytes: number; lengthBytes: number }
  | { kind: "read-error"; file: string; offsetBytes: number }
  | { kind: "no-space"; file: string };

interface FileData {
  current: Buffer;
  currentSize: number;
  /** Bytes the file takes on the medium: up to its last written byte (extending by truncate is sparse, free). */
  allocatedBytes: number;
  durable: Buffer;
  durableSize: number;
  /** Writes and truncations since the last sync, in order. */
  unsynced: ({ kind: "write"; offsetBytes: number; data: Buffer } | { kind: "truncate"; sizeBytes: number })[];
}

type DirectoryChange = { kind: "link"; name: string; file: FileData } | { kind: "unlink"; name: string };

/** As the real medium does: a system error with its code, turned into a SnaplogError (IO, NO_SPACE). */
function ioError(message: string, code: string): SnaplogError {
  return fromSystemError(Object.assign(new Error(message), { code }), { path: message.slice(message.lastIndexOf(" ") + 1) });
}

function grown(buffer: Buffer, sizeBytes: number): Buffer {
  if (buffer.length >= sizeBytes) return buffer;
  const next = Buffer.alloc(Math.max(sizeBytes, buffer.length * 2, 4096));
  buffer.copy(next);
  return next;
}

/**
 * The power of one machine: media that share it count their calls together and go off together
 * (a cut armed at call N may fall between the two legs of a mirrored write).
 */
export class PowerSupply {
  poweredOff = false;
  /** Medium calls so far, on every medium it feeds; a power cut can be armed at a given count. */
  callCount = 0;
  cutAtCall = Infinity;
}

export class SimulatedMedium implements Medium {
  private readonly files = new Map<string, FileData>();
  /** The directory as it is durable (name → file), and the changes since. */
  private readonly durableNames = new Map<string, FileData>();
  private readonly directoryChanges: DirectoryChange[] = [];

  get callCount(): number {
    return this.power.callCount;
  }

  get cutAtCall(): number {
    return this.power.cutAtCall;
  }

  set cutAtCall(call: number) {
    this.power.cutAtCall = call;
  }
  readonly faults: InjectedFault[] = [];
  /** Faults are off until the run turns them on (creating the disk is not under test). */
  faultsEnabled = false;

  constructor(
    private readonly prng: Prng,
    private readonly rates: FaultRates = NO_FAULTS,
    /** Shared with the other media of the same machine (a mirror leg's); its own by default. */
    readonly power: PowerSupply = new PowerSupply(),
  ) {}

  get isPoweredOff(): boolean {
    return this.power.poweredOff;
  }

  /** Cuts the power now: nothing unsynced survives except what afterPowerCut() picks. */
  powerCut(): void {
    this.power.poweredOff = true;
  }

  /**
   * The medium after the reboot: the durable directory plus a prefix of its unsynced changes;
   * every file's durable bytes plus, per sector, some of its unsynced writes.
   */
  afterPowerCut(prng: Prng, power?: PowerSupply): SimulatedMedium {
    const next = new SimulatedMedium(prng, this.rates, power);
    const names = new Map(this.durableNames);
    const kept = prng.below(this.directoryChanges.length + 1);
    for (const change of this.directoryChanges.slice(0, kept)) {
      if (change.kind === "link") names.set(change.name, change.file);
      else names.delete(change.name);
    }
    const survivors = new Map<FileData, FileData>();
    for (const [name, file] of names) {
      let copy = survivors.get(file);
      if (copy === undefined) {
        copy = survive(file, prng);
        survivors.set(file, copy);
      }
      next.files.set(name, copy);
      next.durableNames.set(name, copy);
    }
    for (const fault of this.faults) next.faults.push(fault);
    return next;
  }

  // ---- Medium -------------------------------------------------------------------------------

  async open(name: string, options: { create: boolean }): Promise<MediumFile> {
    this.step(name);
    let file = this.files.get(name);
    if (file === undefined) {
      if (!options.create) throw ioError(`ENOENT: no such file, open '${name}'`, "ENOENT");
      file = { current: Buffer.alloc(0), currentSize: 0, allocatedBytes: 0, durable: Buffer.alloc(0), durableSize: 0, unsynced: [] };
      this.files.set(name, file);
      this.directoryChanges.push({ kind: "link", name, file });
    }
    return new SimulatedFile(this, name, file);
  }

  async exists(name: string): Promise<boolean> {
    this.step(name);
    return this.files.has(name);
  }

  async remove(name: string): Promise<void> {
    this.step(name);
    if (!this.files.delete(name)) return;
    this.directoryChanges.push({ kind: "unlink", name });
  }

  async rename(source: string, target: string): Promise<void> {
    this.step(source);
    const file = this.files.get(source);
    if (file === undefined) throw ioError(`ENOENT: no such file, rename '${source}'`, "ENOENT");
    this.files.delete(source);
    this.files.set(target, file);
    // One change per name, kept or lost in order: a rename that is half kept shows both names or the old one.
    this.directoryChanges.push({ kind: "link", name: target, file }, { kind: "unlink", name: source });
  }

  async list(): Promise<string[]> {
    this.step("(directory)");
    return [...this.files.keys()];
  }

  async syncDirectory(): Promise<void> {
    this.step("(directory)");
    for (const change of this.directoryChanges) {
      if (change.kind === "link") this.durableNames.set(change.name, change.file);
      else this.durableNames.delete(change.name);
    }
    this.directoryChanges.length = 0;
  }

  async copyIn(): Promise<void> {
    throw new SnaplogError(ErrorCodes.UNSUPPORTED, "the simulated medium does not import outside files");
  }

  // ---- used by SimulatedFile ----------------------------------------------------------------

  /** Counts a call and fails it when the power is (or goes) off. */
  step(name: string): void {
    const power = this.power;
    power.callCount++;
    if (power.callCount >= power.cutAtCall) power.poweredOff = true;
    if (power.poweredOff) throw ioError(`EIO: powered off (${name})`, "EIO");
  }

  read(name: string, file: FileData, target: Uint8Array, positionBytes: number): number {
    this.step(name);
    if (this.faultsEnabled && this.prng.chance(this.rates.readError)) {
      this.faults.push({ kind: "read-error", file: name, offsetBytes: positionBytes });
      throw ioError(`EIO: i/o error, read '${name}'`, "EIO");
    }
    const end = Math.min(file.currentSize, positionBytes + target.length);
    if (end <= positionBytes) return 0;
    file.current.copy(target, 0, positionBytes, end);
    return end - positionBytes;
  }

  write(name: string, file: FileData, data: Buffer, positionBytes: number): void {
    this.step(name);
    const end = positionBytes + data.length;
    if (end > file.allocatedBytes && this.allocatedBytes() + (end - file.allocatedBytes) > this.rates.capacityBytes) {
      if (this.faultsEnabled) this.faults.push({ kind: "no-space", file: name });
      throw ioError(`ENOSPC: no space left on device, write '${name}'`, "ENOSPC");
    }
    let at = positionBytes;
    if (
      this.faultsEnabled &&
      FAULTABLE_FILE.test(name) &&
      this.prng.chance(this.rates.misdirect) &&
      positionBytes % SECTOR_BYTES === 0 &&
      file.currentSize > data.length
    ) {
      // Somewhere else in the same file, sector-aligned, inside what exists.
      const sectors = Math.floor((file.currentSize - data.length) / SECTOR_BYTES) + 1;
      at = this.prng.below(sectors) * SECTOR_BYTES;
      if (at !== positionBytes)
        this.faults.push({ kind: "misdirect", file: name, intendedBytes: positionBytes, actualBytes: at, lengthBytes: data.length });
    }
    applyWrite(file, Buffer.from(data), at);
    // A misdirected write lands inside what exists; it never extends the file where it was meant to.
    file.currentSize = Math.max(file.currentSize, at + data.length);
    file.allocatedBytes = Math.max(file.allocatedBytes, at + data.length);
    if (this.faultsEnabled && this.prng.chance(this.rates.bitFlip)) this.flipSomeBit(FAULTABLE_FILE);
    if (this.faultsEnabled && this.prng.chance(this.rates.metadataFlip)) this.flipSomeBit(METADATA_FILE);
  }

  truncate(name: string, file: FileData, sizeBytes: number): void {
    this.step(name);
    file.current = grown(file.current, sizeBytes);
    file.allocatedBytes = Math.min(file.allocatedBytes, sizeBytes);
    if (sizeBytes < file.currentSize) file.current.fill(0, sizeBytes, file.currentSize);
    file.currentSize = sizeBytes;
    file.unsynced.push({ kind: "truncate", sizeBytes });
  }

  sync(name: string, file: FileData): void {
    this.step(name);
    for (const change of file.unsynced) {
      if (change.kind === "truncate") {
        file.durable = grown(file.durable, change.sizeBytes);
        if (change.sizeBytes < file.durableSize) file.durable.fill(0, change.sizeBytes, file.durableSize);
        file.durableSize = change.sizeBytes;
      } else {
        file.durable = grown(file.durable, change.offsetBytes + change.data.length);
        change.data.copy(file.durable, change.offsetBytes);
        file.durableSize = Math.max(file.durableSize, change.offsetBytes + change.data.length);
      }
    }
    file.unsynced.length = 0;
  }

  private allocatedBytes(): number {
    let total = 0;
    for (const file of new Set(this.files.values())) total += file.allocatedBytes;
    return total;
  }

  /** Whether a fault hit the journal or checkpoint. */
  get metadataDamaged(): boolean {
    return this.faults.some((fault) => fault.kind === "bit-flip" && METADATA_FILE.test(fault.file));
  }

  /** Rot: one bit of one stored byte of a file matching `files`, in what reads see and in what is durable alike. */
  private flipSomeBit(files: RegExp): void {
    const names = [...this.files.keys()].filter((name) => files.test(name) && this.files.get(name)!.currentSize > 0).sort();
    if (names.length === 0) return;
    const name = names[this.prng.below(names.length)];
    const file = this.files.get(name)!;
    const offsetBytes = this.prng.below(file.currentSize);
    const bit = 1 << this.prng.below(8);
    file.current[offsetBytes] ^= bit;
    if (offsetBytes < file.durableSize) file.durable[offsetBytes] ^= bit;
    for (const change of file.unsynced) {
      if (change.kind === "write" && offsetBytes >= change.offsetBytes && offsetBytes < change.offsetBytes + change.data.length)
        change.data[offsetBytes - change.offsetBytes] ^= bit;
    }
    this.faults.push({ kind: "bit-flip", file: name, offsetBytes });
  }
}

function applyWrite(file: FileData, data: Buffer, positionBytes: number): void {
  file.current = grown(file.current, positionBytes + data.length);
  data.copy(file.current, positionBytes);
  file.unsynced.push({ kind: "write", offsetBytes: positionBytes, data });
}

/** What a file holds after the power cut: its durable bytes plus, sector by sector, some unsynced writes. */
function survive(file: FileData, prng: Prng): FileData {
  let size = file.durableSize;
  let content: Buffer = Buffer.from(file.durable.subarray(0, Math.max(size, 0)));
  for (const change of file.unsynced) {
    if (change.kind === "truncate") {
      if (!prng.chance(0.5)) continue;
      content = grown(content, change.sizeBytes);
      if (change.sizeBytes < size) content.fill(0, change.sizeBytes, size);
      size = change.sizeBytes;
      continue;
    }
    for (let offset = 0; offset < change.data.length; offset += SECTOR_BYTES) {
      if (!prng.chance(0.5)) continue;
      const at = change.offsetBytes + offset;
      const piece = change.data.subarray(offset, Math.min(offset + SECTOR_BYTES, change.data.length));
      content = grown(content, at + piece.length);
      piece.copy(content, at);
      size = Math.max(size, at + piece.length);
    }
  }
  const durable = Buffer.from(content.subarray(0, size));
  return { current: Buffer.from(durable), currentSize: size, allocatedBytes: size, durable, durableSize: size, unsynced: [] };
}

class SimulatedFile implements MediumFile {
  constructor(
    private readonly medium: SimulatedMedium,
    readonly name: string,
    private readonly file: FileData,
  ) {}

  async read(target: Uint8Array, positionBytes: number): Promise<number> {
    return this.medium.read(this.name, this.file, target, positionBytes);
  }

  async writev(buffers: Uint8Array[], positionBytes: number): Promise<void> {
    this.medium.write(this.name, this.file, Buffer.concat(buffers), positionBytes);
  }

  async sync(): Promise<void> {
    this.medium.sync(this.name, this.file);
  }

  async sizeBytes(): Promise<number> {
    this.medium.step(this.name);
    return this.file.currentSize;
  }

  async truncate(sizeBytes: number): Promise<void> {
    this.medium.truncate(this.name, this.file, sizeBytes);
  }

  async close(): Promise<void> {
    // Closing never fails and needs no power: a handle is just memory.
  }
}
