/** store.json: the store's format, default block size and its LUN state (next, pool, holders), at the top of the store directory. */
import { randomUUID } from "node:crypto";
import { promises as fs } from "node:fs";
import * as path from "node:path";
import { FORMAT_VERSION } from "../engine/index.js";
import { ErrorCodes, fromSystemError, SnaplogError } from "../util/errors.js";
import { readJsonFile, writeJsonFile } from "../util/json-file.js";
import { checkBlockSize } from "./block-size.js";
import type { LunRange } from "./lun-pool.js";
import { disksPath, STORE_FILE } from "./paths.js";

export interface StoreFile {
  formatVersion: number;
  blockSizeBytes: number;
  createdAt: string;
  /** The store's id (archives in a shared vault are kept per store id); absent in stores made before archives: given at first use. */
  storeId?: string;
  /** Next LUN to hand out (sequential policy: never reused). */
  lunNext: number;
  /** LUNs released by disks with the pool policy, for their next snapshots (lun-pool.ts); absent: none. */
  lunPool?: LunRange[];
  /**
   * LUNs that a newer snapshot took over from an older one (constant policy): LUN → the snapshot
   * that holds it now, or null when none does (luns.ts). Absent: every LUN is held by the one volume
   * that recorded it.
   */
  lunHolders?: Record<string, LunHolderName | null>;
}

/** A snapshot named in store.json. */
export interface LunHolderName {
  disk: string;
  snapshot: string;
}

export async function storeFileExists(storePath: string): Promise<boolean> {
  try {
    await fs.access(path.join(storePath, STORE_FILE));
    return true;
  } catch {
    return false;
  }
}

/** Creates an empty store at `storePath` (the directory may exist, empty or not, but hold no store). */
export async function createStoreFile(storePath: string, blockSizeBytes: number): Promise<void> {
  checkBlockSize(blockSizeBytes);
  if (await storeFileExists(storePath)) {
    throw new SnaplogError(ErrorCodes.ALREADY_EXISTS, `a store already exists at ${storePath}`, { path: storePath });
  }
  try {
    await fs.mkdir(disksPath(storePath), { recursive: true });
  } catch (error) {
    throw fromSystemError(error, { path: storePath });
  }
  const storeFile: StoreFile = {
    formatVersion: FORMAT_VERSION,
    blockSizeBytes,
    createdAt: new Date().toISOString(),
    storeId: randomUUID(),
    lunNext: 1,
  };
  await writeStoreFile(storePath, storeFile);
}

/** The store file of the store at `storePath` (absolute): NO_STORE without one, UNSUPPORTED in another format. */
export async function readStoreFile(storePath: string): Promise<StoreFile> {
  if (!(await storeFileExists(storePath))) {
    throw new SnaplogError(ErrorCodes.NO_STORE, `no store at ${storePath}`, { path: storePath, hint: "create one with: snaplog init" });
  }
  const storeFile = await readJsonFile<StoreFile>(path.join(storePath, STORE_FILE));
  if (storeFile.formatVersion !== FORMAT_VERSION) {
    throw new SnaplogError(ErrorCodes.UNSUPPORTED, `store format ${storeFile.formatVersion} is not supported by this version`, {
      path: storePath,
    });
  }
  return storeFile;
}

export function writeStoreFile(storePath: string, storeFile: StoreFile): Promise<void> {
  return writeJsonFile(path.join(storePath, STORE_FILE), storeFile);
}
