/**
 * Export names to volumes (SPEC §3.1): what a host attaches, found by the name it asks for
 * (`DISK`, `DISK@SNAPSHOT`, `DISK@baseline`, `DISK@lsn:N`, `DISK@TIME`, `lun:N`), and the list
 * of everything attachable. Each volume carries the life it ends with (open-disk.ts).
 */
import type { SnapshotCut } from "../engine/index.js";
import { ErrorCodes, notFound, SnaplogError } from "../util/errors.js";
import type { Catalog } from "./catalog.js";
import { DiskVolume, VolumeLife } from "./disk-volume.js";
import { parseExportName } from "./export-name.js";
import type { OpenDisk } from "./open-disk.js";
import { describePoint, timeOfPoint } from "./point-spec.js";
import type { ExportInfo, Volume, VolumeResolver } from "./volume.js";

export class ExportResolver implements VolumeResolver {
  constructor(private readonly catalog: Catalog) {}

  resolve(exportName: string): Volume {
    const target = parseExportName(exportName);
    if (target.kind === "lun") return this.resolveLun(target.lun);
    const disk = this.catalog.disk(target.disk);
    switch (target.kind) {
      case "current":
        return currentVolume(disk);
      case "baseline":
        return new DiskVolume(disk.engine, `${disk.meta.name}@baseline`, baselineDescription(disk.meta.name), 0, true, disk.life);
      case "snapshot":
        return snapshotVolume(disk, target.snapshot);
      case "lsn":
      case "time":
        return pointVolume(disk, exportName, target.kind === "lsn" ? target.lsn : disk.engine.viewAtTime(target.timeMs));
    }
  }

  private resolveLun(lun: number): Volume {
    for (const disk of this.catalog.disks.values()) {
      if (disk.meta.lun === lun) return this.resolve(disk.meta.name);
      const cut = disk.engine.snapshots.find((snapshot) => snapshot.lun === lun);
      if (cut !== undefined) return this.resolve(`${disk.meta.name}@${cut.name}`);
    }
    throw notFound(`no volume holds LUN ${lun}`);
  }

  list(): ExportInfo[] {
    const exports: ExportInfo[] = [];
    for (const disk of this.catalog.disksByName()) {
      const name = disk.meta.name;
      exports.push({ name, description: currentDescription(disk) });
      exports.push({ name: `${name}@baseline`, description: baselineDescription(name) });
      for (const cut of disk.engine.snapshots) exports.push({ name: `${name}@${cut.name}`, description: snapshotDescription(name, cut) });
    }
    return exports;
  }
}

function currentVolume(disk: OpenDisk): Volume {
  const name = disk.meta.name;
  if (disk.rollingBack)
    throw new SnaplogError(ErrorCodes.CONFLICT, `disk ${name} is being rolled back; connect again when it is done`, { disk: name });
  return new DiskVolume(disk.engine, name, currentDescription(disk), Infinity, false, disk.currentLife);
}

function snapshotVolume(disk: OpenDisk, snapshotName: string): Volume {
  const name = disk.meta.name;
  const cut = disk.engine.findSnapshot(snapshotName);
  if (cut === undefined) throw notFound(`disk ${name} has no snapshot named ${JSON.stringify(snapshotName)}`, { disk: name });
  let life = disk.snapshotLives.get(cut.name);
  if (life === undefined) {
    life = new VolumeLife();
    disk.snapshotLives.set(cut.name, life);
  }
  return new DiskVolume(disk.engine, `${name}@${cut.name}`, snapshotDescription(name, cut), cut.lsn, true, life);
}

/** Checked against the window now (pinView), then pinned while attached: nothing it sees is freed. */
function pointVolume(disk: OpenDisk, exportName: string, lsn: number): Volume {
  const engine = disk.engine;
  const release = engine.pinView(lsn);
  const description = `disk ${disk.meta.name} at ${describePoint(lsn, timeOfPoint(engine, lsn))}, read-only`;
  return new DiskVolume(engine, exportName, description, lsn, true, disk.life, release);
}

function currentDescription(disk: OpenDisk): string {
  return `disk ${disk.meta.name}, LUN ${disk.meta.lun}, read-write`;
}

function baselineDescription(diskName: string): string {
  return `baseline of disk ${diskName}, read-only`;
}

function snapshotDescription(diskName: string, cut: SnapshotCut): string {
  return `snapshot ${cut.name} of disk ${diskName}, LUN ${cut.lun}, LSN ${cut.lsn}, ${new Date(cut.timeMs).toISOString()}, read-only`;
}
