/**
 * `snaplog vault ls` and `snaplog vault restore` (SPEC §5.3).
 *
 * A restore picks the chain (the disk's newest, or the one holding @SNAPSHOT; a disk name that
 * several stores archived must be given as STOREID/DISK), then verifies everything before the
 * new disk exists: every part of every stream is fetched and checked against its manifest's
 * SHA-256 (a missing, short or altered object is named), and each stream is read whole by the
 * checking reader into a spool. Only then are the streams imported in order — the full one
 * makes the disk, each incremental adds to it; with --at the last one stops at that time. If
 * an import still fails (space, I/O), the new disk is deleted: a restore leaves a whole disk or
 * none.
 */
import { createHash, randomUUID } from "node:crypto";
import { createReadStream, promises as fs } from "node:fs";
import * as path from "node:path";
import { ErrorCodes, notFound, SnaplogError } from "../../util/errors.js";
import { StreamReader, type StreamHeader } from "../../stream/index.js";
import type { Vault } from "../../vault/index.js";
import type { Catalog } from "../catalog.js";
import type { DiskLifecycle } from "../disk-lifecycle.js";
import { checkName } from "../names.js";
import type { ProgressCallback, VaultChainInfo, VaultRestoreRequest, VaultRestoreResult } from "../operations/index.js";
import { parsePoint } from "../point-spec.js";
import { IMPORTS_DIRECTORY, importSpool, type Spool } from "./import-stream.js";
import { writeAll } from "../../util/write-all.js";
import { openNamedVault } from "./vault-registry.js";
import { itemPrefix, MANIFEST_NAME, readChains, type ArchiveManifest, type Chain } from "./vault-layout.js";

export async function listVaultChains(catalog: Catalog, vaultName: string, disk?: string): Promise<VaultChainInfo[]> {
  const vault = await openNamedVault(catalog, vaultName);
  try {
    await vault.init();
    const chains = await readChains(vault);
    return chains.filter((chain) => disk === undefined || matches(chain, disk)).map(chainInfo);
  } finally {
    await vault.close();
  }
}

function matches(chain: Chain, disk: string): boolean {
  const slash = disk.indexOf("/");
  return slash < 0 ? chain.diskName === disk : chain.storeId === disk.slice(0, slash) && chain.diskName === disk.slice(slash + 1);
}

function chainInfo(chain: Chain): VaultChainInfo {
  return {
    storeId: chain.storeId,
    diskId: chain.diskId,
    disk: chain.diskName,
    chainId: chain.chainId,
    items: chain.items.map((item) => ({
      index: item.index,
      snapshot: item.manifest?.to.name ?? "(incomplete)",
      lsn: item.manifest?.to.lsn ?? 0,
      time: item.manifest === undefined ? "" : new Date(item.manifest.to.timeMs).toISOString(),
      kind: item.manifest?.kind ?? (item.index === 0 ? "full" : "incremental"),
      compacted: item.manifest?.compacted ?? false,
      bytes: item.manifest?.bytes ?? item.partBytes,
      complete: item.manifest !== undefined,
      snapshots: item.manifest === undefined ? [] : [...item.manifest.cuts.map((cut) => cut.name), item.manifest.to.name],
    })),
  };
}

export async function restoreFromVault(
  catalog: Catalog,
  lifecycle: DiskLifecycle,
  request: VaultRestoreRequest,
  onProgress?: ProgressCallback,
): Promise<VaultRestoreResult> {
  const at = request.source.indexOf("@");
  const diskSpec = at < 0 ? request.source : request.source.slice(0, at);
  const snapshot = at < 0 ? undefined : request.source.slice(at + 1);
  const diskName = diskSpec.slice(diskSpec.indexOf("/") + 1);
  const target = checkName("disk", request.as ?? diskName);
  if (catalog.has(target))
    throw new SnaplogError(ErrorCodes.ALREADY_EXISTS, `a disk named ${target} exists already`, {
      disk: target,
      hint: "restore it under another name with --as",
    });
  const untilMs = request.at === undefined ? undefined : timeOf(request.at);
  const vault = await openNamedVault(catalog, request.vault);
  const spool = path.join(catalog.path, IMPORTS_DIRECTORY, `.restore-${process.pid}-${randomUUID()}`);
  try {
    await vault.init();
    const chains = (await readChains(vault)).filter((chain) => matches(chain, diskSpec));
    const stores = new Set(chains.map((chain) => chain.storeId));
    if (stores.size === 0) throw notFound(`vault ${request.vault} holds no archive of disk ${diskSpec}`);
    if (stores.size > 1) {
      throw new SnaplogError(
        ErrorCodes.CONFLICT,
        `vault ${request.vault} holds disk ${diskSpec} from ${stores.size} stores: name one, as STOREID/${diskName} (${[...stores].join(", ")})`,
      );
    }
    const manifests = pickStreams(chains, diskSpec, snapshot, untilMs);
    await fs.mkdir(spool, { recursive: true });
    const files: Spool[] = [];
    const total = manifests.reduce((sum, manifest) => sum + manifest.bytes, 0);
    let done = 0;
    for (const manifest of manifests) {
      files.push(await fetchVerified(vault, manifest, spool, (bytes) => onProgress?.((done += bytes), total)));
    }
    const restored: string[] = [];
    let created = false;
    try {
      for (const [index, file] of files.entries()) {
        const last = index === files.length - 1;
        // Verified whole already (fetchVerified): applied without receiving it again.
        const result = await importSpool(catalog, lifecycle, { disk: target, untilMs: last ? untilMs : undefined }, file);
        created = true;
        for (const name of result.snapshots) restored.push(name);
      }
    } catch (error) {
      if (created) await lifecycle.delete(target).catch(() => undefined);
      throw error;
    }
    return {
      disk: target,
      storeId: manifests[0].storeId,
      chainId: manifests[0].chainId,
      streams: manifests.length,
      snapshots: restored,
      bytes: total,
    };
  } finally {
    await fs.rm(spool, { recursive: true, force: true });
    await vault.close();
  }
}

function timeOf(text: string): number {
  const point = parsePoint(text, "--at", "point");
  if (point.kind !== "time")
    throw new SnaplogError(ErrorCodes.INVALID_ARGUMENT, "--at takes a time (ISO 8601 with its zone) for a vault restore");
  return point.timeMs;
}

/**
 * The streams to apply, in order: a chain's prefix from its full stream, all complete. A chain's
 * newest streams may lack their manifest while an archive is under way (they do not exist yet);
 * a missing manifest *before* a complete stream means an object was lost: what lies after it is
 * refused, naming the manifest, and what lies before it can still be restored (@SNAPSHOT).
 */
function pickStreams(chains: Chain[], diskSpec: string, snapshot: string | undefined, untilMs: number | undefined): ArchiveManifest[] {
  const ordered = [...chains].reverse();
  for (const chain of ordered) {
    const complete: ArchiveManifest[] = [];
    for (const item of chain.items) {
      if (item.manifest === undefined || item.manifest.index !== complete.length) break;
      complete.push(item.manifest);
    }
    const beyond = chain.items.flatMap((item) => (item.index >= complete.length && item.manifest !== undefined ? [item.manifest] : []));
    const broken = () => {
      const key = `${itemPrefix(chain.storeId, chain.diskId, chain.chainId, complete.length)}${MANIFEST_NAME}`;
      const last = complete[complete.length - 1];
      return new SnaplogError(
        ErrorCodes.CORRUPT,
        last === undefined
          ? `vault object ${key} is missing: chain ${chain.chainId} of disk ${diskSpec} has no complete full stream, the streams after it cannot be restored`
          : `vault object ${key} is missing: chain ${chain.chainId} of disk ${diskSpec} is complete only up to stream ${last.index} (snapshot ${last.to.name}); the streams after it cannot be restored`,
        last === undefined ? {} : { hint: `restore up to there: snaplog vault restore VAULT ${diskSpec}@${last.to.name}` },
      );
    };
    const holds = (manifest: ArchiveManifest, name: string) => manifest.to.name === name || manifest.cuts.some((cut) => cut.name === name);
    if (snapshot === undefined && untilMs === undefined && beyond.length > 0) throw broken();
    if (
      snapshot !== undefined &&
      !complete.some((manifest) => holds(manifest, snapshot)) &&
      beyond.some((manifest) => holds(manifest, snapshot))
    )
      throw broken();
    if (complete.length === 0) continue;
    let end = complete.length - 1;
    if (snapshot !== undefined) {
      end = complete.findIndex((manifest) => holds(manifest, snapshot));
      if (end < 0) continue;
    }
    if (untilMs !== undefined) {
      const covering = complete.findIndex((manifest) => manifest.to.timeMs >= untilMs);
      if (covering < 0) {
        if (beyond.some((manifest) => manifest.to.timeMs >= untilMs)) throw broken();
        throw notFound(
          `the newest archive of disk ${diskSpec} ends at ${new Date(complete[complete.length - 1].to.timeMs).toISOString()}, before --at`,
        );
      }
      const stream = complete[covering];
      const atCut = stream.to.timeMs === untilMs || stream.cuts.some((cut) => cut.timeMs === untilMs);
      if (stream.compacted && !atCut) {
        throw new SnaplogError(
          ErrorCodes.OUTSIDE_WINDOW,
          `--at falls inside a compacted stream (${stream.from?.name ?? "the start"} .. ${stream.to.name}): only its snapshots are kept`,
          {
            hint: "archive with --compact off to keep every point in time",
          },
        );
      }
      end = covering;
    }
    return complete.slice(0, end + 1);
  }
  throw notFound(
    snapshot === undefined
      ? `no complete archive of disk ${diskSpec} in the vault`
      : `no complete archive of disk ${diskSpec} holds snapshot ${snapshot}`,
  );
}

/** Every part fetched and checked against the manifest, the stream read whole; returns the spool file. */
async function fetchVerified(vault: Vault, manifest: ArchiveManifest, spool: string, onBytes: (bytes: number) => void): Promise<Spool> {
  const prefix = itemPrefix(manifest.storeId, manifest.diskId, manifest.chainId, manifest.index);
  const file = path.join(spool, `${String(manifest.index).padStart(6, "0")}.slar`);
  const handle = await fs.open(file, "wx", 0o600);
  let bytes = 0;
  try {
    for (const part of manifest.parts) {
      const key = `${prefix}${part.name}`;
      let body: Buffer;
      try {
        body = await vault.get(key);
      } catch (error) {
        if (error instanceof SnaplogError && error.code === ErrorCodes.NOT_FOUND) {
          throw new SnaplogError(
            ErrorCodes.CORRUPT,
            `vault object ${key} is missing (${vault.description}): stream ${manifest.index} of chain ${manifest.chainId} cannot be restored`,
          );
        }
        throw error;
      }
      if (body.length !== part.sizeBytes)
        throw new SnaplogError(
          ErrorCodes.CORRUPT,
          `vault object ${key} holds ${body.length} bytes, its manifest says ${part.sizeBytes} (${vault.description})`,
        );
      if (createHash("sha256").update(body).digest("hex") !== part.sha256) {
        throw new SnaplogError(
          ErrorCodes.CORRUPT,
          `vault object ${key} does not match its manifest's SHA-256 (${vault.description}): it was altered`,
        );
      }
      bytes = await writeAll(handle, body, bytes);
      onBytes(body.length);
    }
  } finally {
    await handle.close();
  }
  const reader = new StreamReader(createReadStream(file, { highWaterMark: 1024 * 1024 }));
  let header: StreamHeader;
  try {
    header = await reader.readHeader();
    for await (const item of reader.items()) void item;
  } catch (error) {
    throw new SnaplogError(
      ErrorCodes.CORRUPT,
      `stream ${manifest.index} of chain ${manifest.chainId} (${prefix}) is not valid: ${error instanceof Error ? error.message : String(error)}`,
    );
  } finally {
    await reader.close();
  }
  if (reader.trailer?.sha256.toString("hex") !== manifest.streamSha256) {
    throw new SnaplogError(
      ErrorCodes.CORRUPT,
      `stream ${manifest.index} of chain ${manifest.chainId} (${prefix}) is not the one its manifest names`,
    );
  }
  return { path: file, header, bytes };
}
