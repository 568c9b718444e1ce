import { promises as fs } from "node:fs";
import * as path from "node:path";
import { ErrorCodes, SnaplogError } from "../util/errors.js";
import { LOCK_FILE } from "./paths.js";

interface LockOwner {
  pid: number;
  startedAt: string;
  command: string;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Locks this process holds, so that a second open in the same process is refused too. */
const heldLockPaths = new Set<string>();

/**
 * One owner per store: a lock file holding the owner's PID, created with link(2) so that two
 * processes racing for it cannot both win. A lock whose PID is no longer alive is stale (the
 * owner was killed) and is replaced.
 */
export class StoreLock {
  private constructor(private readonly lockPath: string) {}

  /** Forgets the lock without removing the file, as a killed owner would (crash tests). */
  abandon(): void {
    heldLockPaths.delete(this.lockPath);
  }

  static async acquire(storePath: string, command: string): Promise<StoreLock> {
    const lockPath = path.join(storePath, LOCK_FILE);
    const owner: LockOwner = { pid: process.pid, startedAt: new Date().toISOString(), command };
    const candidate = `${lockPath}.${process.pid}`;
    await fs.writeFile(candidate, JSON.stringify(owner) + "\n");
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          await fs.link(candidate, lockPath);
          heldLockPaths.add(lockPath);
          return new StoreLock(lockPath);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
        }
        const holder = await StoreLock.readOwner(lockPath);
        const ownedHere = holder?.pid === process.pid && heldLockPaths.has(lockPath);
        if (holder !== undefined && (ownedHere || (holder.pid !== process.pid && isAlive(holder.pid)))) {
          throw new SnaplogError(
            ErrorCodes.STORE_LOCKED,
            `store ${storePath} is in use by process ${holder.pid} (${holder.command}, since ${holder.startedAt})`,
            { path: storePath, hint: "stop that process, or use the CLI while it runs: commands go through its API" },
          );
        }
        // Stale: its owner is gone. Remove it only if it is still the same file we judged.
        await fs.rm(lockPath, { force: true });
      }
      throw new SnaplogError(ErrorCodes.STORE_LOCKED, `store ${storePath}: could not take the lock (contended)`, { path: storePath });
    } finally {
      await fs.rm(candidate, { force: true });
    }
  }

  static async readOwner(lockPath: string): Promise<LockOwner | undefined> {
    try {
      return JSON.parse(await fs.readFile(lockPath, "utf8")) as LockOwner;
    } catch {
      return undefined;
    }
  }

  async release(): Promise<void> {
    heldLockPaths.delete(this.lockPath);
    await fs.rm(this.lockPath, { force: true });
  }
}
