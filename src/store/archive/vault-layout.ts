/**
 * Where archives lie in a vault (docs/vaults.md "Layout"), the same on every target:
 *
 *   snaplog-vault.json                                        {format: 1}
 *   stores/STORE/disks/DISK/disk.json                         the disk's name and geometry, per archive
 *   stores/STORE/disks/DISK/chains/CHAIN/NNNNNN/part-NNNNNN.slar   the stream, cut into parts
 *   stores/STORE/disks/DISK/chains/CHAIN/NNNNNN/manifest.json     written last: the commit point
 *
 * STORE and DISK are ids (two appliances, or two disks of one name, never collide); CHAIN is
 * `<created ms>-<random>` (so newer chains sort last); NNNNNN the stream's index in its chain
 * (000000 the full one). A stream without its manifest does not exist for restore and is listed
 * as incomplete.
 */
import { ErrorCodes, SnaplogError } from "../../util/errors.js";
import type { StreamPoint } from "../../stream/index.js";
import type { Vault } from "../../vault/index.js";

export const VAULT_MARKER_KEY = "snaplog-vault.json";
export const MANIFEST_NAME = "manifest.json";

export function diskPrefix(storeId: string, diskId: string): string {
  return `stores/${storeId}/disks/${diskId}/`;
}

export function itemPrefix(storeId: string, diskId: string, chainId: string, index: number): string {
  return `${diskPrefix(storeId, diskId)}chains/${chainId}/${String(index).padStart(6, "0")}/`;
}

export function partName(partIndex: number): string {
  return `part-${String(partIndex).padStart(6, "0")}.slar`;
}

export interface ArchivedDisk {
  format: 1;
  storeId: string;
  diskId: string;
  diskName: string;
  sizeBytes: number;
  blockSizeBytes: number;
}

export interface ArchiveManifest {
  format: 1;
  storeId: string;
  diskId: string;
  diskName: string;
  chainId: string;
  index: number;
  streamId: string;
  createdMs: number;
  kind: "full" | "incremental";
  compacted: boolean;
  from: StreamPoint | null;
  to: StreamPoint;
  /** The source's snapshots inside the stream, in order. */
  cuts: StreamPoint[];
  parts: { name: string; sizeBytes: number; sha256: string }[];
  bytes: number;
  /** The stream trailer's SHA-256 (of every byte before the trailer). */
  streamSha256: string;
}

/** A parsed key under stores/: what it belongs to. */
export interface KeyPlace {
  storeId: string;
  diskId: string;
  chainId?: string;
  index?: number;
  file: string;
}

const KEY_PATTERN = /^stores\/([^/]+)\/disks\/([^/]+)\/(?:chains\/([^/]+)\/(\d{6})\/)?([^/]+)$/;

export function placeOfKey(key: string): KeyPlace | undefined {
  const match = KEY_PATTERN.exec(key);
  if (match === null) return undefined;
  return {
    storeId: match[1],
    diskId: match[2],
    chainId: match[3],
    index: match[4] === undefined ? undefined : Number(match[4]),
    file: match[5],
  };
}

export async function readVaultJson<T>(vault: Vault, key: string, check: (value: unknown) => value is T): Promise<T> {
  const bytes = await vault.get(key);
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString("utf8"));
  } catch {
    throw new SnaplogError(ErrorCodes.CORRUPT, `vault object ${key} (${vault.description}) is not JSON`);
  }
  if (!check(value))
    throw new SnaplogError(ErrorCodes.CORRUPT, `vault object ${key} (${vault.description}) is not what snaplog wrote there`);
  return value;
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null;
const isPoint = (value: unknown): value is StreamPoint =>
  isRecord(value) &&
  typeof value.name === "string" &&
  typeof value.id === "string" &&
  Number.isSafeInteger(value.lsn) &&
  Number.isSafeInteger(value.timeMs);

export function isManifest(value: unknown): value is ArchiveManifest {
  return (
    isRecord(value) &&
    value.format === 1 &&
    typeof value.storeId === "string" &&
    typeof value.diskId === "string" &&
    typeof value.diskName === "string" &&
    typeof value.chainId === "string" &&
    Number.isSafeInteger(value.index) &&
    typeof value.streamId === "string" &&
    (value.kind === "full" || value.kind === "incremental") &&
    typeof value.compacted === "boolean" &&
    (value.from === null || isPoint(value.from)) &&
    isPoint(value.to) &&
    Array.isArray(value.cuts) &&
    value.cuts.every(isPoint) &&
    Array.isArray(value.parts) &&
    value.parts.every(
      (part) => isRecord(part) && typeof part.name === "string" && Number.isSafeInteger(part.sizeBytes) && typeof part.sha256 === "string",
    ) &&
    Number.isSafeInteger(value.bytes) &&
    typeof value.streamSha256 === "string"
  );
}

export function isArchivedDisk(value: unknown): value is ArchivedDisk {
  return (
    isRecord(value) &&
    value.format === 1 &&
    typeof value.storeId === "string" &&
    typeof value.diskId === "string" &&
    typeof value.diskName === "string"
  );
}

/** One stream of a chain as the vault holds it: its manifest (complete) or only parts. */
export interface ChainItem {
  index: number;
  manifest?: ArchiveManifest;
  partBytes: number;
  partNames: string[];
}

export interface Chain {
  storeId: string;
  diskId: string;
  diskName: string;
  chainId: string;
  items: ChainItem[];
}

/** Every chain in the vault (LIST is the catalog), with the manifests read. */
export async function readChains(vault: Vault, prefix = "stores/"): Promise<Chain[]> {
  const chains = new Map<string, Chain>();
  const diskNames = new Map<string, string>();
  const manifests: { chain: Chain; item: ChainItem; key: string }[] = [];
  for await (const object of vault.list(prefix)) {
    const place = placeOfKey(object.key);
    if (place === undefined) continue;
    if (place.chainId === undefined || place.index === undefined) {
      if (place.file === "disk.json") diskNames.set(`${place.storeId}/${place.diskId}`, object.key);
      continue;
    }
    const chainKey = `${place.storeId}/${place.diskId}/${place.chainId}`;
    let chain = chains.get(chainKey);
    if (chain === undefined) {
      chain = { storeId: place.storeId, diskId: place.diskId, diskName: "", chainId: place.chainId, items: [] };
      chains.set(chainKey, chain);
    }
    let item = chain.items.find((candidate) => candidate.index === place.index);
    if (item === undefined) {
      item = { index: place.index, partBytes: 0, partNames: [] };
      chain.items.push(item);
    }
    if (place.file === MANIFEST_NAME) manifests.push({ chain, item, key: object.key });
    else {
      item.partBytes += object.sizeBytes;
      item.partNames.push(place.file);
    }
  }
  for (const { item, key } of manifests) item.manifest = await readVaultJson(vault, key, isManifest);
  for (const chain of chains.values()) {
    chain.items.sort((a, b) => a.index - b.index);
    const diskKey = diskNames.get(`${chain.storeId}/${chain.diskId}`);
    const named = chain.items.find((item) => item.manifest !== undefined)?.manifest?.diskName;
    chain.diskName = named ?? (diskKey === undefined ? "?" : (await readVaultJson(vault, diskKey, isArchivedDisk)).diskName);
  }
  return [...chains.values()].sort((a, b) => a.chainId.localeCompare(b.chainId));
}
