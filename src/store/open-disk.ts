/**
 * An open disk: its disk.json, its engine and the medium under it, and the lives of its volumes
 * (VolumeLife): ended when the disk is deleted or the store closes; the current volume's also
 * by a rollback (then replaced: connections made before fail, new ones see the rolled-back
 * disk); a snapshot's when it is deleted.
 */
import type { DiskEngine, Medium } from "../engine/index.js";
import type { SnaplogError } from "../util/errors.js";
import type { DiskFile } from "./disk-file.js";
import { VolumeLife } from "./disk-volume.js";
import type { MirrorLeg } from "./mirror/mirror-leg.js";

export interface OpenDisk {
  meta: DiskFile;
  engine: DiskEngine;
  /** The medium the engine runs on; disk.json is written through it too. */
  medium: Medium;
  /** The baseline and point-in-time volumes; ended: the disk is deleted or the store closed. */
  life: VolumeLife;
  /** The current volume's connections made since the last rollback. */
  currentLife: VolumeLife;
  /** Snapshot volumes by snapshot name, made when one is first attached. */
  snapshotLives: Map<string, VolumeLife>;
  /** A rollback is under way: no new connection to the current volume until it is done. */
  rollingBack: boolean;
  /** The mirror leg (SPEC §6), while the policy names one: the current volume's writes go to it too. */
  mirror?: MirrorLeg;
}

export function openDisk(meta: DiskFile, engine: DiskEngine, medium: Medium): OpenDisk {
  return { meta, engine, medium, life: new VolumeLife(), currentLife: new VolumeLife(), snapshotLives: new Map(), rollingBack: false };
}

/** Every volume of the disk fails from now on with `error`. */
export function endVolumes(disk: OpenDisk, error: SnaplogError): void {
  disk.life.end(error);
  disk.currentLife.end(error);
  for (const life of disk.snapshotLives.values()) life.end(error);
}

/** The disk is served again after endVolumes (a delete that failed): new connections get fresh lives. */
export function renewVolumes(disk: OpenDisk): void {
  disk.life = new VolumeLife();
  disk.currentLife = new VolumeLife();
  disk.snapshotLives.clear();
}
