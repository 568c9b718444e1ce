/**
 * The space policy (SPEC §4.2): `--space-high P% --space-action compact|delete-oldest|archive-then-delete`. Space
 * is the use of the file system that holds the store, as `df` computes Use%: used / (used +
 * available), rounded up. When it passes a disk's P, a `space-high` event is recorded for that
 * disk (hooks attached to it run) and its action runs, step by step, until use is 5 points
 * below P or nothing is left to act on:
 *
 *   1. every such disk written or changed since it was last compacted here is compacted in place
 *      first (freeing what no view needs costs no history), disks with the oldest snapshot first;
 *   2. then, on the delete-oldest disks, the oldest snapshot of all goes (reason "space": the
 *      ordinary delete, so --merge-oldest-into-baseline applies), and its disk is compacted so
 *      the space returns.
 *
 * Each step is a `space-action` event with the use before and after; `space-exhausted` says that
 * nothing is left while use is still high, `space-normal` that use fell 5 points below P. While
 * any disk is past its mark, compaction keeps no spare segment files (Catalog.spaceHigh): what
 * it frees goes back to the file system at once. `archive-then-delete` is delete-oldest with the
 * snapshot archived to the disk's --space-vault first (archive/archive-to-vault.ts): only a
 * snapshot the vault holds complete is deleted; an archive that fails leaves it (and the event
 * says why). The server's space monitor (src/policy/space-monitor.ts) calls check() at
 * least every 5 s and after every write burst that creates a segment file.
 */
import { promises as fs } from "node:fs";
import type { DiskEngine } from "../engine/index.js";
import { formatBytes } from "../util/parse.js";
import type { Catalog } from "./catalog.js";
import type { OpenDisk } from "./open-disk.js";
import { settingsOf } from "./policy/policy-settings.js";
import { deleteSnapshotNow } from "./snapshots.js";
import { archiveToVault } from "./archive/archive-to-vault.js";
import { ErrorCodes, SnaplogError } from "../util/errors.js";

/** How far below its mark use must fall before a disk's space action stops (SPEC §4.2). */
export const SPACE_CLEAR_POINTS = 5;

/** The store's file system, as df sees it: bytes in use and bytes available to unprivileged writers. */
export interface FileSystemUse {
  usedBytes: number;
  availableBytes: number;
}

/** Measures the file system that holds the store (injectable for tests). */
export type MeasureSpace = (storePath: string) => Promise<FileSystemUse>;

/** df's Use%: used / (used + available) × 100, rounded up (0 for an empty or sizeless file system). */
export function usePercent(use: FileSystemUse): number {
  const total = use.usedBytes + use.availableBytes;
  return total <= 0 ? 0 : Math.ceil((use.usedBytes * 100) / total);
}

/** statfs(2) of `directory`, as df reads it: used = (blocks − free) × size, available = available blocks × size. */
export async function statfsUse(directory: string): Promise<FileSystemUse> {
  const stat = await fs.statfs(directory);
  return { usedBytes: (stat.blocks - stat.bfree) * stat.bsize, availableBytes: stat.bavail * stat.bsize };
}

/** One step a check took. */
export interface SpaceStep {
  disk: string;
  action: "compact" | "delete-oldest" | "archive-then-delete";
  /** The snapshot deleted (delete-oldest, archive-then-delete). */
  snapshot?: string;
  bytesFreed: number;
  segmentsReleased: number;
  usePercentBefore: number;
  usePercentAfter: number;
}

export interface SpaceCheckResult {
  usePercentBefore: number;
  usePercentAfter: number;
  steps: SpaceStep[];
}

/** A disk past its mark: since when, and what was done for it. */
interface Episode {
  /** The disk's state (LSN, snapshots) when it was last compacted here: compacting again frees nothing new. */
  compactedAt: string | undefined;
  /** `space-exhausted` was recorded (once per episode, until something changes). */
  exhaustedAt: string | undefined;
  /** Snapshots whose delete failed: not tried again in this episode. */
  failed: Set<string>;
}

interface PolicyDisk {
  disk: OpenDisk;
  high: number;
  action: "compact" | "delete-oldest" | "archive-then-delete";
  /** archive-then-delete: where the snapshot goes first. */
  vault: string | null;
}

type Step = { kind: "compact"; target: PolicyDisk } | { kind: "delete"; target: PolicyDisk; snapshot: string };

/** What the space policy remembers between checks; one per store (Store.checkSpace). */
export class SpaceGuard {
  /** Episodes by engine: a deleted disk's goes with it, one created again under its name starts afresh. */
  private readonly episodes = new Map<DiskEngine, Episode>();

  constructor(private readonly catalog: Catalog) {}

  /** One check: measure, start or end episodes, and act until use is low enough or nothing is left. */
  async check(measure: MeasureSpace): Promise<SpaceCheckResult> {
    const { catalog } = this;
    let percent = this.policyDisks().length === 0 ? 0 : usePercent(await measure(catalog.path));
    const result: SpaceCheckResult = { usePercentBefore: percent, usePercentAfter: percent, steps: [] };
    await this.endEpisodes(percent);
    for (const target of this.policyDisks()) {
      if (percent > target.high && !this.episodes.has(target.disk.engine)) await this.startEpisode(target, percent);
    }
    this.catalog.spaceHigh = this.episodes.size > 0;
    // Each disk is compacted at most once per check (besides after a delete): a busy disk always has news.
    const compacted = new Set<DiskEngine>();
    while (!catalog.closed) {
      const active = this.policyDisks().filter(
        (target) => this.episodes.has(target.disk.engine) && percent > target.high - SPACE_CLEAR_POINTS,
      );
      if (active.length === 0) break;
      const step = this.nextStep(active, compacted);
      if (step === undefined) {
        await this.recordExhausted(active, percent);
        break;
      }
      const done = await this.runStep(step, percent, measure);
      if (done === undefined) continue;
      result.steps.push(done);
      percent = done.usePercentAfter;
    }
    result.usePercentAfter = percent;
    await this.endEpisodes(percent);
    this.catalog.spaceHigh = this.episodes.size > 0;
    return result;
  }

  /** The open disks with a space action this check can run. */
  private policyDisks(): PolicyDisk[] {
    const targets: PolicyDisk[] = [];
    for (const disk of this.catalog.disks.values()) {
      const settings = settingsOf(disk.meta);
      if (settings.spaceHighPercent === null) continue;
      if (settings.spaceAction === "compact" || settings.spaceAction === "delete-oldest" || settings.spaceAction === "archive-then-delete")
        targets.push({ disk, high: settings.spaceHighPercent, action: settings.spaceAction, vault: settings.spaceVault });
    }
    return targets;
  }

  /** Compaction where it can free something new, oldest snapshot first; then the oldest snapshot of the delete-oldest disks. */
  private nextStep(active: PolicyDisk[], compacted: Set<DiskEngine>): Step | undefined {
    const byOldest = [...active].sort(
      (a, b) => oldestTime(a.disk) - oldestTime(b.disk) || a.disk.meta.name.localeCompare(b.disk.meta.name),
    );
    for (const target of byOldest) {
      const engine = target.disk.engine;
      if (!compacted.has(engine) && this.episodes.get(engine)?.compactedAt !== stateOf(engine)) {
        compacted.add(engine);
        return { kind: "compact", target };
      }
    }
    let chosen: { target: PolicyDisk; snapshot: string; timeMs: number } | undefined;
    for (const target of byOldest) {
      if (target.action === "compact") continue;
      const failed = this.episodes.get(target.disk.engine)?.failed;
      // The disk's oldest (by cut), and of those the one taken first.
      const oldest = target.disk.engine.snapshots.find((cut) => failed?.has(cut.name) !== true);
      if (oldest !== undefined && (chosen === undefined || oldest.timeMs < chosen.timeMs))
        chosen = { target, snapshot: oldest.name, timeMs: oldest.timeMs };
    }
    return chosen === undefined ? undefined : { kind: "delete", target: chosen.target, snapshot: chosen.snapshot };
  }

  /** Runs a step and records it; undefined when it failed (logged, and recorded as an event). */
  private async runStep(step: Step, percentBefore: number, measure: MeasureSpace): Promise<SpaceStep | undefined> {
    const { catalog } = this;
    const disk = step.target.disk;
    const name = disk.meta.name;
    const episode = this.episodes.get(disk.engine)!;
    let bytesFreed = 0;
    let segmentsReleased: number;
    try {
      if (step.kind === "delete" && step.target.action === "archive-then-delete")
        await archiveFirst(catalog, disk, step.snapshot, step.target.vault);
      if (step.kind === "delete") {
        const deleted = await catalog.control.run(async () => {
          // Gone or changed meanwhile (a user deleted it, the disk went): look again next time round.
          if (catalog.disks.get(name) !== disk || disk.engine.findSnapshot(step.snapshot) === undefined) return undefined;
          return deleteSnapshotNow(catalog, disk, step.snapshot, "space");
        });
        if (deleted === undefined) return undefined;
        bytesFreed += deleted.bytesFreed;
      }
      // No spare segment files: what is freed goes back to the file system now.
      const compaction = await disk.engine.compact({ spareSegmentCount: 0 });
      episode.compactedAt = stateOf(disk.engine);
      bytesFreed += compaction.bytesFreed;
      segmentsReleased = compaction.segmentsReleased;
    } catch (error) {
      if (catalog.closed) return undefined;
      if (step.kind === "delete") episode.failed.add(step.snapshot);
      else episode.compactedAt = stateOf(disk.engine);
      await this.recordFailure(step, error);
      return undefined;
    }
    const percentAfter = usePercent(await measure(catalog.path));
    const done: SpaceStep = {
      disk: name,
      action: step.kind === "delete" ? step.target.action : "compact",
      ...(step.kind === "delete" ? { snapshot: step.snapshot } : {}),
      bytesFreed,
      segmentsReleased,
      usePercentBefore: percentBefore,
      usePercentAfter: percentAfter,
    };
    const archived =
      step.kind === "delete" && step.target.action === "archive-then-delete"
        ? `archived snapshot ${step.snapshot} to vault ${step.target.vault}, `
        : "";
    const what = step.kind === "delete" ? `${archived}deleted snapshot ${step.snapshot} and compacted` : "compacted";
    await this.record({
      type: "space-action",
      disk: name,
      snapshot: done.snapshot,
      message: `space: ${what} disk ${name}, ${formatBytes(bytesFreed)} freed, ${segmentsReleased} segment files released; use ${percentBefore}% → ${percentAfter}% (mark ${step.target.high}%)`,
      details: {
        action: done.action,
        bytesFreed,
        segmentsReleased,
        usePercentBefore: percentBefore,
        usePercentAfter: percentAfter,
        spaceHighPercent: step.target.high,
      },
    });
    return done;
  }

  private async startEpisode(target: PolicyDisk, percent: number): Promise<void> {
    this.episodes.set(target.disk.engine, { compactedAt: undefined, exhaustedAt: undefined, failed: new Set() });
    const name = target.disk.meta.name;
    await this.record({
      type: "space-high",
      disk: name,
      message: `space: the store's file system is ${percent}% used, past ${target.high}% (disk ${name}): ${target.action} runs until ${target.high - SPACE_CLEAR_POINTS}%`,
      details: { usePercent: percent, spaceHighPercent: target.high, action: target.action },
    });
  }

  /** Ends the episodes of disks whose use fell 5 points below their mark, and of disks gone or without the policy. */
  private async endEpisodes(percent: number): Promise<void> {
    const targets = new Map(this.policyDisks().map((target) => [target.disk.engine, target]));
    for (const engine of [...this.episodes.keys()]) {
      const target = targets.get(engine);
      if (target !== undefined && percent > target.high - SPACE_CLEAR_POINTS) continue;
      this.episodes.delete(engine);
      if (target === undefined) continue;
      await this.record({
        type: "space-normal",
        disk: target.disk.meta.name,
        message: `space: the store's file system is ${percent}% used, ${SPACE_CLEAR_POINTS} points or more below ${target.high}% (disk ${target.disk.meta.name})`,
        details: { usePercent: percent, spaceHighPercent: target.high },
      });
    }
  }

  /** Nothing left to act on: said once per disk until its state changes. */
  private async recordExhausted(active: PolicyDisk[], percent: number): Promise<void> {
    for (const target of active) {
      const episode = this.episodes.get(target.disk.engine)!;
      // Not the window: its sliding start would repeat the event every check.
      const state = stateOf(target.disk.engine, false);
      if (episode.exhaustedAt === state) continue;
      episode.exhaustedAt = state;
      const name = target.disk.meta.name;
      await this.record({
        type: "space-exhausted",
        disk: name,
        message: `space: the store's file system is still ${percent}% used (mark ${target.high}%), and ${target.action} has nothing left to act on for disk ${name}`,
        details: { usePercent: percent, spaceHighPercent: target.high, action: target.action },
      });
    }
  }

  private async recordFailure(step: Step, error: unknown): Promise<void> {
    const name = step.target.disk.meta.name;
    const reason = error instanceof Error ? error.message : String(error);
    const verb = step.target.action === "archive-then-delete" ? `archiving then deleting` : "deleting";
    const what = step.kind === "delete" ? `${verb} snapshot ${step.snapshot} of disk ${name}` : `compacting disk ${name}`;
    this.catalog.logger?.error(`space: ${what} failed: ${reason}`);
    await this.record({
      type: "space-action-failed",
      disk: name,
      snapshot: step.kind === "delete" ? step.snapshot : undefined,
      message: `space: ${what} failed: ${reason}`,
      details: { action: step.kind === "delete" ? step.target.action : "compact" },
    });
  }

  private async record(event: {
    type: string;
    disk: string;
    snapshot?: string;
    message: string;
    details: Record<string, string | number | boolean | null>;
  }): Promise<void> {
    await this.catalog.events
      .record({ ...event, reason: "space" })
      .catch((error: unknown) =>
        this.catalog.logger?.error(`event log: could not record an event: ${error instanceof Error ? error.message : String(error)}`),
      );
  }
}

/** The snapshot archived to `vault` (or found there already, complete) before the space policy deletes it. */
async function archiveFirst(catalog: Catalog, disk: OpenDisk, snapshot: string, vault: string | null): Promise<void> {
  if (vault === null) throw new SnaplogError(ErrorCodes.INTERNAL, `disk ${disk.meta.name} has archive-then-delete without a vault`);
  try {
    await archiveToVault(catalog, { disk: disk.meta.name, vault, snapshot });
  } catch (error) {
    // In the vault already (complete): it may go.
    if (error instanceof SnaplogError && error.code === ErrorCodes.ALREADY_EXISTS) return;
    throw error;
  }
}

/** What compaction could free depends on this: the log's end, the snapshots and (with `window`) where the window starts. */
function stateOf(engine: DiskEngine, window = true): string {
  const state = `${engine.lsnLast}/${engine.snapshots.length}`;
  return window ? `${state}/${engine.historyWindow().lsnFirst}` : state;
}

/** When the disk's oldest snapshot was taken (Infinity without one): the order steps go in. */
function oldestTime(disk: OpenDisk): number {
  let oldest = Infinity;
  for (const cut of disk.engine.snapshots) oldest = Math.min(oldest, cut.timeMs);
  return oldest;
}
