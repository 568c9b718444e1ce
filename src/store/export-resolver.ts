/**
 * Export names to volumes (SPEC §3.1): what a host attaches, found by the name it asks for
 * (`DISK`, `DISK@SNAPSHOT`, `DISK@baseline`, `DISK@lsn:N`, `DISK@TIME`, `lun:N`), and the list
 * of everything attachable. Each volume carries the life it ends with (open-disk.ts).
 */
import { isReadOnlyReplica } from "./replication/replica-mode.js";
import type { SnapshotCut } from "../engine/index.js";
import { ErrorCodes, notFound, SnaplogError } from "../util/errors.js";
import type { Catalog } from "./catalog.js";
import { DiskVolume, VolumeLife } from "./disk-volume.js";
import { parseExportName } from "./export-name.js";
import { heldLun, lunHolder } from "./luns.js";
import type { OpenDisk } from "./open-disk.js";
import { describePoint, timeOfPoint } from "./point-spec.js";
import type { StoreFile } from "./store-file.js";
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
        return snapshotVolume(disk, target.snapshot, this.catalog.storeFile);
      case "lsn":
      case "time":
        return pointVolume(disk, exportName, target.kind === "lsn" ? target.lsn : disk.engine.viewAtTime(target.timeMs));
    }
  }

  /** The volume that holds the LUN now (luns.ts): a LUN a newer snapshot took over attaches that one. */
  private resolveLun(lun: number): Volume {
    const holder = lunHolder(this.catalog, lun);
    if (holder === undefined) throw notFound(`no volume holds LUN ${lun}`);
    return holder.kind === "disk" ? currentVolume(holder.disk) : snapshotVolume(holder.disk, holder.cut.name, this.catalog.storeFile);
  }

  list(): ExportInfo[] {
    const exports: ExportInfo[] = [];
    const storeFile = this.catalog.storeFile;
    for (const disk of this.catalog.disksByName()) {
      const name = disk.meta.name;
      exports.push({ name, description: currentDescription(disk) });
      exports.push({ name: `${name}@baseline`, description: baselineDescription(name) });
      for (const cut of disk.engine.snapshots) {
        exports.push({ name: `${name}@${cut.name}`, description: snapshotDescription(name, cut, heldLun(storeFile, name, cut)) });
      }
    }
    return exports;
  }
}

function currentVolume(disk: OpenDisk): Volume {
  const name = disk.meta.name;
  if (disk.rollingBack)
    throw new SnaplogError(ErrorCodes.CONFLICT, `disk ${name} is being rolled back; connect again when it is done`, { disk: name });
  // A replica takes writes only from its source's batches until it is promoted.
  return new DiskVolume(
    disk.engine,
    name,
    currentDescription(disk),
    Infinity,
    isReadOnlyReplica(disk.meta),
    disk.currentLife,
    undefined,
    disk,
  );
}

function snapshotVolume(disk: OpenDisk, snapshotName: string, storeFile: StoreFile): Volume {
  const name = disk.meta.name;
  const cut = disk.engine.findSnapshot(snapshotName);
  if (cut === undefined) throw notFound(`disk ${name} has no snapshot named ${JSON.stringify(snapshotName)}`, { disk: name });
  let life = disk.snapshotLives.get(cut.name);
  if (life === undefined) {
    life = new VolumeLife();
    disk.snapshotLives.set(cut.name, life);
  }
  const description = snapshotDescription(name, cut, heldLun(storeFile, name, cut));
  return new DiskVolume(disk.engine, `${name}@${cut.name}`, description, cut.lsn, true, life);
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

/** `lun`: the LUN it holds now; null: a newer snapshot took over the one it was created with. */
function snapshotDescription(diskName: string, cut: SnapshotCut, lun: number | null): string {
  const lunText = lun === null ? `no LUN (LUN ${cut.lun} passed to a newer snapshot)` : `LUN ${lun}`;
  return `snapshot ${cut.name} of disk ${diskName}, ${lunText}, LSN ${cut.lsn}, ${new Date(cut.timeMs).toISOString()}, read-only`;
}
