import { promises as fs } from "node:fs";
import * as path from "node:path";
import { ErrorCodes, SnaplogError } from "../util/errors.js";
import { LOCK_FILE } from "./paths.js";

interface LockOwner {
  pid: number;
  startedAt: string;
  command: string;
}

/**
 * Whether the process `pid` can still act: it exists and is not a zombie. A killed owner whose
 * parent has not reaped it yet (a CLI run under `timeout` or a shell, killed with its wrapper,
 * where init reaps late) still answers kill(pid, 0), yet it holds no file and writes nothing.
 */
async function isAlive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
  return !(await isZombie(pid));
}

/**
 * Whether /proc says the process has exited and waits to be reaped: state Z (or X) with no
 * thread left but the group leader. A leader that ended with pthread_exit while its other
 * threads run also shows Z; it counts them in Threads, and is alive. Without /proc (not Linux)
 * nothing is known, and the process counts as alive.
 */
async function isZombie(pid: number): Promise<boolean> {
  let status: string;
  try {
    status = await fs.readFile(`/proc/${pid}/status`, "utf8");
  } catch {
    // Reaped since kill(pid, 0) answered, when /proc is there at all.
    return procIsMounted();
  }
  const state = /^State:\s+(\S)/m.exec(status)?.[1];
  const threadCount = Number(/^Threads:\s+(\d+)/m.exec(status)?.[1] ?? 1);
  return (state === "Z" || state === "X") && threadCount <= 1;
}

async function procIsMounted(): Promise<boolean> {
  try {
    await fs.access(`/proc/${process.pid}/status`);
    return true;
  } catch {
    return false;
  }
}

/** Locks this process holds, so that a second open in the same process is refused too. */
const heldLockPaths = new Set<string>();

/**
 * One owner per store: a lock file holding the owner's PID, created with link(2) so that two
 * processes racing for it cannot both win. A lock whose PID is no longer alive is stale (the
 * owner was killed) and is replaced; so is one whose PID is a zombie (killed, not yet reaped).
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
        if (holder !== undefined && (ownedHere || (holder.pid !== process.pid && (await isAlive(holder.pid))))) {
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
