/**
 * A mirror leg's file on a SimulatedMedium (the simulator's second medium): the LegFile the
 * mirror writes, reads and syncs, with the medium's power cuts, torn writes and lost
 * unsynced data. Made on first open, its creation not synced, as MirrorFile makes a real one:
 * a power cut may lose it, and the leg must then rebuild it whole.
 */
import type { MediumFile } from "../src/engine/index.js";
import type { LegFile } from "../src/store/mirror/mirror-file.js";
import type { SimulatedMedium } from "./simulated-medium.js";

export class SimulatedLegFile implements LegFile {
  private constructor(
    private readonly medium: SimulatedMedium,
    private readonly name: string,
    private readonly file: MediumFile,
    readonly created: boolean,
  ) {}

  static async open(medium: SimulatedMedium, name: string, sizeBytes: number): Promise<SimulatedLegFile> {
    const created = !(await medium.exists(name));
    const file = await medium.open(name, { create: created });
    if ((await file.sizeBytes()) < sizeBytes) await file.truncate(sizeBytes);
    return new SimulatedLegFile(medium, name, file, created);
  }

  write(data: Uint8Array, positionBytes: number): Promise<void> {
    return this.file.writev([data], positionBytes);
  }

  writeZeroes(positionBytes: number, lengthBytes: number): Promise<void> {
    return this.file.writev([Buffer.alloc(lengthBytes)], positionBytes);
  }

  async read(target: Buffer, positionBytes: number): Promise<void> {
    const got = await this.file.read(target, positionBytes);
    target.fill(0, got);
  }

  sync(): Promise<void> {
    return this.file.sync();
  }

  stillAtPath(): Promise<boolean> {
    return this.medium.exists(this.name);
  }

  close(): Promise<void> {
    return this.file.close();
  }
}
