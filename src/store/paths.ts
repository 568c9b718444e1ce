import * as path from "node:path";

/** Where things live inside a store directory (docs/on-disk-format.md). */
export const STORE_FILE = "store.json";
export const LOCK_FILE = "store.lock";
export const DISKS_DIRECTORY = "disks";
export const DISK_FILE = "disk.json";

export function apiSocketPath(storePath: string): string {
  return path.join(storePath, "api.sock");
}

export function apiTokenPath(storePath: string): string {
  return path.join(storePath, "api.token");
}

export function disksPath(storePath: string): string {
  return path.join(storePath, DISKS_DIRECTORY);
}

export function diskPath(storePath: string, diskName: string): string {
  return path.join(storePath, DISKS_DIRECTORY, diskName);
}
