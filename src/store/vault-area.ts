/**
 * This appliance as a vault for others (snaplog://HOST:PORT, SPEC §5.3): objects other
 * appliances archive here live under STORE/vault/, one file per key, written all-or-nothing
 * (temp file, fsync, rename, directory fsync) by the directory vault itself, so the rules of a
 * file:// vault (keys, temp names, sweep, NO_SPACE) are the rules here. The API serves it on
 * /v1/vault/* (api/routes/vault-objects.ts); the directory is made on first use.
 */
import * as path from "node:path";
import { DirectoryVault, checkVaultPrefix, type VaultObjectInfo } from "../vault/index.js";

export type { VaultObjectInfo } from "../vault/index.js";
export const VAULT_AREA_DIRECTORY = "vault";
/** Objects in one list answer, at most. */
export const VAULT_AREA_LIST_LIMIT_MAX = 1_000;

export interface VaultAreaPage {
  objects: VaultObjectInfo[];
  /** More objects follow the last one: ask again with after = its key. */
  truncated: boolean;
}

export class VaultArea {
  private readonly vault: DirectoryVault;
  private ready: Promise<void> | undefined;

  constructor(storePath: string) {
    this.vault = new DirectoryVault(vaultAreaPath(storePath), "area of this appliance");
  }

  async put(key: string, body: Buffer): Promise<void> {
    await this.init();
    await this.vault.put(key, body);
  }

  async get(key: string): Promise<Buffer> {
    await this.init();
    return this.vault.get(key);
  }

  async head(key: string): Promise<VaultObjectInfo | undefined> {
    await this.init();
    return this.vault.head(key);
  }

  /** Up to `limit` objects whose key starts with `prefix` and sorts after `after`, in key order. */
  async listPage(prefix: string, after: string | undefined, limit: number): Promise<VaultAreaPage> {
    checkVaultPrefix(prefix);
    await this.init();
    const objects: VaultObjectInfo[] = [];
    for await (const object of this.vault.list(prefix)) {
      if (after !== undefined && object.key <= after) continue;
      if (objects.length === limit) return { objects, truncated: true };
      objects.push(object);
    }
    return { objects, truncated: false };
  }

  async delete(keys: readonly string[]): Promise<void> {
    await this.init();
    await this.vault.delete(keys);
  }

  async sweepIncomplete(olderThanMs: number): Promise<number> {
    await this.init();
    return this.vault.sweepIncomplete(olderThanMs);
  }

  private init(): Promise<void> {
    // A failed init (e.g. EACCES) is tried again by the next request.
    this.ready ??= this.vault.init().catch((error: unknown) => {
      this.ready = undefined;
      throw error;
    });
    return this.ready;
  }
}

export function vaultAreaPath(storePath: string): string {
  return path.join(storePath, VAULT_AREA_DIRECTORY);
}
