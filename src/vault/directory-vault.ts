/**
 * A vault in a local directory (file:///path). Each key is a file at DIRECTORY/KEY.
 *
 * put is all-or-nothing: the bytes go to a temp file in the key's own directory (".tmp-*",
 * a name no key can have, so list() never shows it), which is fsynced, renamed over the key,
 * and the directory is fsynced. A crash leaves the old object or the new one, plus at worst a
 * temp file that sweepIncomplete removes. A full file system is NO_SPACE, the temp file removed.
 */
import { randomBytes } from "node:crypto";
import { promises as fs, type Dirent } from "node:fs";
import * as path from "node:path";
import { ErrorCodes, fromSystemError, notFound, SnaplogError } from "../util/errors.js";
import type { Vault, VaultObjectInfo } from "./vault.js";
import { checkVaultKey, checkVaultPrefix } from "./vault-key.js";

/** Temp files of puts under way: a leading "." keeps them apart from every key (vault-key.ts). */
export const TEMP_FILE_PREFIX = ".tmp-";

export class DirectoryVault implements Vault {
  readonly description: string;

  constructor(
    readonly directory: string,
    description = `file://${directory}`,
  ) {
    this.description = description;
  }

  async init(): Promise<void> {
    const parent = path.dirname(this.directory);
    try {
      await fs.mkdir(this.directory);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT") {
        throw notFound(`vault ${this.description}: parent directory ${parent} does not exist`, {
          path: parent,
          hint: "create the parent directory first (the vault directory itself is made for you)",
        });
      }
      if (code !== "EEXIST") throw this.systemError(error, "make the vault directory", this.directory);
    }
    try {
      const stat = await fs.stat(this.directory);
      if (!stat.isDirectory()) throw new SnaplogError(ErrorCodes.INVALID_ARGUMENT, `vault ${this.description}: not a directory`);
      await fs.access(this.directory, fs.constants.W_OK | fs.constants.R_OK | fs.constants.X_OK);
    } catch (error) {
      throw this.systemError(error, "use the vault directory", this.directory);
    }
  }

  async put(key: string, body: Buffer): Promise<void> {
    checkVaultKey(key);
    const target = this.pathOf(key);
    const directory = path.dirname(target);
    const temporary = path.join(directory, `${TEMP_FILE_PREFIX}${randomBytes(6).toString("hex")}-${path.basename(target)}`);
    try {
      await fs.mkdir(directory, { recursive: true });
      const handle = await fs.open(temporary, "wx", 0o644);
      try {
        await handle.writeFile(body);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await fs.rename(temporary, target);
      await syncDirectory(directory);
    } catch (error) {
      await fs.rm(temporary, { force: true }).catch(() => undefined);
      throw this.systemError(error, `store ${key}`, target);
    }
  }

  async get(key: string): Promise<Buffer> {
    checkVaultKey(key);
    const file = this.pathOf(key);
    try {
      return await fs.readFile(file);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "EISDIR" || code === "ENOTDIR") throw this.missing(key);
      throw this.systemError(error, `read ${key}`, file);
    }
  }

  async head(key: string): Promise<VaultObjectInfo | undefined> {
    checkVaultKey(key);
    const file = this.pathOf(key);
    try {
      const stat = await fs.stat(file);
      return stat.isFile() ? { key, sizeBytes: stat.size } : undefined;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") return undefined;
      throw this.systemError(error, `stat ${key}`, file);
    }
  }

  async *list(prefix: string): AsyncIterable<VaultObjectInfo> {
    checkVaultPrefix(prefix);
    // Walk only below the prefix's last complete segment; filter and sort the rest.
    const start = prefix.slice(0, prefix.lastIndexOf("/") + 1);
    const objects: VaultObjectInfo[] = [];
    for await (const file of this.walk(start)) {
      if (file.key.startsWith(prefix) && !file.temporary) objects.push({ key: file.key, sizeBytes: (await fs.stat(file.path)).size });
    }
    objects.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    yield* objects;
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (const key of keys) checkVaultKey(key);
    for (const key of keys) {
      try {
        await fs.unlink(this.pathOf(key));
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== "ENOENT" && code !== "ENOTDIR") throw this.systemError(error, `delete ${key}`, this.pathOf(key));
      }
    }
  }

  async sweepIncomplete(olderThanMs: number): Promise<number> {
    const before = Date.now() - olderThanMs;
    let removed = 0;
    for await (const file of this.walk("")) {
      if (!file.temporary) continue;
      try {
        const stat = await fs.stat(file.path);
        if (stat.mtimeMs > before) continue;
        await fs.unlink(file.path);
        removed += 1;
      } catch (error) {
        // A put finishing (rename) or another sweep got there first.
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw this.systemError(error, "sweep temp files", file.path);
      }
    }
    return removed;
  }

  async close(): Promise<void> {}

  private pathOf(key: string): string {
    // Keys are checked: no "..", no leading "/", only "/" as separator.
    return path.join(this.directory, key);
  }

  /** Every file under `relativeDirectory` ("" or ending with "/"): its key-like name and whether it is a temp file. */
  private async *walk(relativeDirectory: string): AsyncIterable<{ key: string; path: string; temporary: boolean }> {
    const pending = [relativeDirectory];
    for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
      const absolute = path.join(this.directory, next);
      let entries: Dirent[];
      try {
        entries = await fs.readdir(absolute, { withFileTypes: true });
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === "ENOENT" || code === "ENOTDIR") continue;
        throw this.systemError(error, "list", absolute);
      }
      for (const entry of entries) {
        const key = `${next}${entry.name}`;
        if (entry.isDirectory()) pending.push(`${key}/`);
        else if (entry.isFile()) yield { key, path: path.join(absolute, entry.name), temporary: entry.name.startsWith(TEMP_FILE_PREFIX) };
      }
    }
  }

  private missing(key: string): SnaplogError {
    return notFound(`vault ${this.description} has no object ${key}`);
  }

  private systemError(error: unknown, what: string, file: string): SnaplogError {
    if (error instanceof SnaplogError) return error;
    const typed = fromSystemError(error, { path: file });
    return new SnaplogError(typed.code, `vault ${this.description}: cannot ${what}: ${typed.message}`, {
      path: file,
      cause: error,
      hint: typed.code === ErrorCodes.NO_SPACE ? "free space on the vault's file system" : undefined,
    });
  }
}

async function syncDirectory(directory: string): Promise<void> {
  const handle = await fs.open(directory, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
