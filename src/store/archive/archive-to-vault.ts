/**
 * `snaplog archive DISK --vault V` (SPEC §5.3): a snapshot shipped to a vault as a stream cut
 * into parts, incremental from the newest snapshot of this disk the vault holds (full when it
 * has none, or with --full: a new chain), compacted by default.
 *
 * Resumable: the stream is a function of (from, to, stream id, creation time) — the writer has
 * no clock and no randomness — so the plan of an archive under way is kept in
 * STORE/archives/VAULT/DISKID.json with the size and SHA-256 of every part the vault took. A
 * run after an interruption (kill -9, network loss, a full target) regenerates the stream,
 * checks each regenerated part against that list and the vault's copy (size), and sends only
 * what is missing: at most the one part that was in flight is sent again. If a part comes out
 * different (compaction freed entries of a non-compacted stream meanwhile), the parts are
 * dropped and the stream starts over. The manifest goes last: before it, the stream does not
 * exist for restore.
 */
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { promises as fs } from "node:fs";
import * as path from "node:path";
import { ErrorCodes, invalidArgument, notFound, SnaplogError } from "../../util/errors.js";
import { readJsonFile, writeJsonFile } from "../../util/json-file.js";
import { CODEC_DEFAULT, type StreamPoint } from "../../stream/index.js";
import type { Vault } from "../../vault/index.js";
import type { Catalog } from "../catalog.js";
import type { OpenDisk } from "../open-disk.js";
import type { ArchiveRequest, ArchiveResult, ProgressCallback } from "../operations/index.js";
import { cutSnapshot } from "../snapshots.js";
import { exportStream } from "./export-stream.js";
import { diskIdOf, snapshotIdOf, storeIdOf } from "./identity.js";
import { defaultSnapshotName } from "../snapshots.js";
import { isKnownVault, openNamedVault } from "./vault-registry.js";
import {
  diskPrefix,
  isManifest,
  itemPrefix,
  MANIFEST_NAME,
  partName,
  readChains,
  readVaultJson,
  VAULT_MARKER_KEY,
  type ArchivedDisk,
  type ArchiveManifest,
} from "./vault-layout.js";

export const ARCHIVES_DIRECTORY = "archives";
export const PART_BYTES_DEFAULT = 64 * 1024 * 1024;
export const PART_BYTES_MIN = 1024 * 1024;

/** An archive under way, kept until its manifest is in the vault. */
interface ArchivePlan {
  chainId: string;
  index: number;
  streamId: string;
  createdMs: number;
  from: StreamPoint | null;
  to: StreamPoint;
  compacted: boolean;
  partBytes: number;
  parts: { sizeBytes: number; sha256: string }[];
}

class StreamChanged extends Error {}

export async function archiveToVault(catalog: Catalog, request: ArchiveRequest, onProgress?: ProgressCallback): Promise<ArchiveResult> {
  try {
    const result = await archiveOnce(catalog, request, onProgress);
    catalog.vaultActivity.succeeded(request.vault, result.bytesSent, catalog.nowMs());
    return result;
  } catch (error) {
    // Counted for a vault the store knows (a name that is none is not a vault's failure).
    if (await isKnownVault(catalog, request.vault).catch(() => false)) catalog.vaultActivity.failed(request.vault, catalog.nowMs());
    throw error;
  }
}

async function archiveOnce(catalog: Catalog, request: ArchiveRequest, onProgress?: ProgressCallback): Promise<ArchiveResult> {
  const disk = catalog.disk(request.disk);
  const partBytes = request.partBytes ?? PART_BYTES_DEFAULT;
  if (!Number.isSafeInteger(partBytes) || partBytes < PART_BYTES_MIN || partBytes > PART_BYTES_DEFAULT) {
    throw invalidArgument(`the part size must be between 1 MiB and 64 MiB, not ${partBytes} bytes`);
  }
  const vault = await openNamedVault(catalog, request.vault);
  try {
    await vault.init();
    if ((await vault.head(VAULT_MARKER_KEY)) === undefined)
      await vault.put(VAULT_MARKER_KEY, Buffer.from(`${JSON.stringify({ format: 1 })}\n`));
    const storeId = await storeIdOf(catalog);
    const diskId = diskIdOf(disk.meta);
    const planPath = path.join(catalog.path, ARCHIVES_DIRECTORY, request.vault, `${diskId}.json`);
    let plan = await resumablePlan(disk, diskId, planPath, request);
    if (plan !== undefined && (await committed(vault, storeId, diskId, plan))) {
      // Killed after the manifest went in but before the plan was removed: that archive is done.
      await fs.rm(planPath, { force: true });
      plan = undefined;
    }
    const resuming = plan !== undefined;
    plan ??= await newPlan(catalog, vault, disk, storeId, diskId, request, partBytes);
    await fs.mkdir(path.dirname(planPath), { recursive: true });
    await writeJsonFile(planPath, plan);
    // A new stream starts clean: parts an abandoned attempt left at its place go first.
    if (!resuming) await dropParts(vault, storeId, diskId, plan);
    // The disk's name and geometry first: a chain under way is listed under its disk's name.
    const archived: ArchivedDisk = {
      format: 1,
      storeId,
      diskId,
      diskName: disk.meta.name,
      sizeBytes: disk.meta.sizeBytes,
      blockSizeBytes: disk.meta.blockSizeBytes,
    };
    await vault.put(`${diskPrefix(storeId, diskId)}disk.json`, Buffer.from(`${JSON.stringify(archived)}\n`));
    // Stale uploads of this store's earlier attempts (an hour old: never one under way).
    await vault.sweepIncomplete(60 * 60 * 1000).catch(() => 0);
    let shipped: Shipped;
    try {
      shipped = await ship(catalog, vault, disk, storeId, diskId, plan, planPath, onProgress);
    } catch (error) {
      if (!(error instanceof StreamChanged)) throw error;
      await dropParts(vault, storeId, diskId, plan);
      plan = { ...plan, streamId: randomUUID(), parts: [] };
      await writeJsonFile(planPath, plan);
      shipped = await ship(catalog, vault, disk, storeId, diskId, plan, planPath, onProgress);
    }
    const manifest: ArchiveManifest = {
      format: 1,
      storeId,
      diskId,
      diskName: disk.meta.name,
      chainId: plan.chainId,
      index: plan.index,
      streamId: plan.streamId,
      createdMs: plan.createdMs,
      kind: plan.from === null ? "full" : "incremental",
      compacted: plan.compacted,
      from: plan.from,
      to: plan.to,
      cuts: shipped.cuts,
      parts: plan.parts.map((part, index) => ({ name: partName(index), ...part })),
      bytes: shipped.bytes,
      streamSha256: shipped.sha256,
    };
    await vault.put(
      `${itemPrefix(storeId, diskId, plan.chainId, plan.index)}${MANIFEST_NAME}`,
      Buffer.from(`${JSON.stringify(manifest, null, 1)}\n`),
    );
    await fs.rm(planPath, { force: true });
    await catalog.events
      .record({
        type: "archive",
        disk: disk.meta.name,
        snapshot: plan.to.name,
        reason: "manual",
        message: `disk ${disk.meta.name}: snapshot ${plan.to.name} archived to vault ${request.vault} (${manifest.kind}, ${shipped.bytes} bytes, ${shipped.bytesSent} sent${resuming ? ", resumed" : ""})`,
      })
      .catch(() => undefined);
    return {
      disk: disk.meta.name,
      vault: request.vault,
      snapshot: plan.to.name,
      chainId: plan.chainId,
      index: plan.index,
      kind: manifest.kind,
      from: plan.from?.name ?? null,
      compacted: plan.compacted,
      parts: plan.parts.length,
      bytes: shipped.bytes,
      bytesSent: shipped.bytesSent,
      partsResumed: shipped.partsResumed,
    };
  } finally {
    await vault.close();
  }
}

/** The vault holds the manifest of this plan's stream (same stream id): it was committed. */
async function committed(vault: Vault, storeId: string, diskId: string, plan: ArchivePlan): Promise<boolean> {
  const key = `${itemPrefix(storeId, diskId, plan.chainId, plan.index)}${MANIFEST_NAME}`;
  if ((await vault.head(key)) === undefined) return false;
  try {
    return (await readVaultJson(vault, key, isManifest)).streamId === plan.streamId;
  } catch {
    return false;
  }
}

/** The plan of an interrupted archive of this disk to this vault, when this request continues it. */
async function resumablePlan(disk: OpenDisk, diskId: string, planPath: string, request: ArchiveRequest): Promise<ArchivePlan | undefined> {
  let plan: ArchivePlan;
  try {
    plan = await readJsonFile<ArchivePlan>(planPath);
  } catch {
    return undefined;
  }
  const stillThere = (point: StreamPoint | null) =>
    point === null || disk.engine.snapshots.some((cut) => cut.name === point.name && snapshotIdOf(diskId, cut) === point.id);
  const sameAsked =
    (request.snapshot === undefined || request.snapshot === plan.to.name) &&
    request.full !== true &&
    (request.compact === undefined || request.compact === plan.compacted) &&
    (request.partBytes === undefined || request.partBytes === plan.partBytes);
  return sameAsked && stillThere(plan.from) && stillThere(plan.to) ? plan : undefined;
}

async function newPlan(
  catalog: Catalog,
  vault: Vault,
  disk: OpenDisk,
  storeId: string,
  diskId: string,
  request: ArchiveRequest,
  partBytes: number,
): Promise<ArchivePlan> {
  const engine = disk.engine;
  const toCut =
    request.snapshot === undefined
      ? await catalog.control.run(async () => {
          const info = await cutSnapshot(
            catalog,
            disk,
            { name: defaultSnapshotName(disk, "archive", catalog.nowMs()), lun: undefined, lsn: undefined },
            "archive",
          );
          return engine.findSnapshot(info.name);
        })
      : engine.findSnapshot(request.snapshot);
  if (toCut === undefined)
    throw notFound(`disk ${disk.meta.name} has no snapshot named ${JSON.stringify(request.snapshot)}`, { disk: disk.meta.name });
  const to: StreamPoint = { name: toCut.name, id: snapshotIdOf(diskId, toCut), lsn: toCut.lsn, timeMs: toCut.timeMs };
  const chains = (await readChains(vault, diskPrefix(storeId, diskId))).filter((chain) =>
    chain.items.some((item) => item.manifest !== undefined),
  );
  for (const chain of chains) {
    // The snapshot as a stream's end, or as a cut inside one (a non-compacted or compacted stream carries both).
    const held = chain.items.find(
      (item) => item.manifest !== undefined && (item.manifest.to.id === to.id || item.manifest.cuts.some((cut) => cut.id === to.id)),
    );
    if (held !== undefined) {
      throw new SnaplogError(
        ErrorCodes.ALREADY_EXISTS,
        `snapshot ${to.name} of disk ${disk.meta.name} is in vault ${request.vault} already (chain ${chain.chainId}, stream ${held.index})`,
        {
          disk: disk.meta.name,
        },
      );
    }
  }
  const base = request.full === true ? undefined : newestBase(chains, disk, diskId, to);
  const compacted = request.compact ?? true;
  const createdMs = catalog.nowMs();
  return {
    chainId: base?.chainId ?? `${String(createdMs).padStart(13, "0")}-${randomBytes(4).toString("hex")}`,
    index: base === undefined ? 0 : base.index + 1,
    streamId: randomUUID(),
    createdMs,
    from: base?.from ?? null,
    to,
    compacted,
    partBytes,
    parts: [],
  };
}

/** The newest complete stream of the newest chain, if its end is still a snapshot here (older than `to`), and the chain goes on from it. */
function newestBase(
  chains: Awaited<ReturnType<typeof readChains>>,
  disk: OpenDisk,
  diskId: string,
  to: StreamPoint,
): { chainId: string; index: number; from: StreamPoint } | undefined {
  const chain = chains[chains.length - 1];
  if (chain === undefined) return undefined;
  let last: ArchiveManifest | undefined;
  let complete = 0;
  for (const item of chain.items) {
    if (item.manifest === undefined || item.index !== complete) break;
    last = item.manifest;
    complete++;
  }
  if (last === undefined) return undefined;
  // A complete stream after a gap (a manifest lost): never build on a broken chain, start a new one.
  if (chain.items.some((item) => item.index >= complete && item.manifest !== undefined)) return undefined;
  const cut = disk.engine.snapshots.find((candidate) => snapshotIdOf(diskId, candidate) === last.to.id);
  if (cut === undefined || cut.lsn >= to.lsn) return undefined;
  return { chainId: chain.chainId, index: last.index, from: last.to };
}

interface Shipped {
  bytes: number;
  bytesSent: number;
  partsResumed: number;
  sha256: string;
  cuts: StreamPoint[];
}

/** Regenerates the stream, cut into parts: parts the vault has (checked) are skipped, the rest put. */
async function ship(
  catalog: Catalog,
  vault: Vault,
  disk: OpenDisk,
  storeId: string,
  diskId: string,
  plan: ArchivePlan,
  planPath: string,
  onProgress?: ProgressCallback,
): Promise<Shipped> {
  const prefix = itemPrefix(storeId, diskId, plan.chainId, plan.index);
  const buffer = Buffer.allocUnsafe(plan.partBytes);
  let filled = 0;
  let partIndex = 0;
  let bytesSent = 0;
  let partsResumed = 0;
  const flushPart = async () => {
    if (filled === 0) return;
    const body = buffer.subarray(0, filled);
    const sha256 = createHash("sha256").update(body).digest("hex");
    const known = plan.parts[partIndex];
    const key = `${prefix}${partName(partIndex)}`;
    if (known !== undefined) {
      if (known.sha256 !== sha256 || known.sizeBytes !== filled) throw new StreamChanged();
      const held = await vault.head(key);
      if (held === undefined || held.sizeBytes !== filled) {
        await vault.put(key, body);
        bytesSent += filled;
      } else partsResumed++;
    } else {
      await vault.put(key, body);
      bytesSent += filled;
      plan.parts.push({ sizeBytes: filled, sha256 });
      await writeJsonFile(planPath, plan);
    }
    partIndex++;
    filled = 0;
  };
  const result = await exportStream(
    catalog,
    {
      disk: disk.meta.name,
      to: plan.to.name,
      from: plan.from?.name,
      compact: plan.compacted,
      order: "time",
      codec: CODEC_DEFAULT,
      streamId: plan.streamId,
      createdMs: plan.createdMs,
    },
    async (chunk) => {
      let at = 0;
      while (at < chunk.length) {
        const take = Math.min(chunk.length - at, plan.partBytes - filled);
        chunk.copy(buffer, filled, at, at + take);
        filled += take;
        at += take;
        if (filled === plan.partBytes) await flushPart();
      }
    },
    onProgress,
  );
  await flushPart();
  if (partIndex < plan.parts.length) throw new StreamChanged();
  // The snapshots the stream itself carries (not the disk's now: one may be gone since).
  return { bytes: result.bytes, bytesSent, partsResumed, sha256: result.sha256, cuts: result.cuts };
}

async function dropParts(vault: Vault, storeId: string, diskId: string, plan: ArchivePlan): Promise<void> {
  const keys: string[] = [];
  for await (const object of vault.list(itemPrefix(storeId, diskId, plan.chainId, plan.index))) keys.push(object.key);
  await vault.delete(keys);
}
