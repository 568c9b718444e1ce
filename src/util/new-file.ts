/**
 * A new file written whole or not at all (`restore --to`, `export -o`). Nothing that exists is
 * ever overwritten or removed: the bytes go to `TARGET.partial`, created exclusively
 * (ALREADY_EXISTS when a file of that name exists: it may be the user's), are synced, and are
 * put in place with link(), which fails when TARGET exists, also when it appeared meanwhile.
 * Only a partial file this call created is removed on failure, so a failed or interrupted
 * write never leaves a file that looks whole under TARGET.
 */
import { constants as fsConstants, promises as fs } from "node:fs";
import * as path from "node:path";
import { ErrorCodes, fromSystemError, SnaplogError, type ErrorContext } from "./errors.js";

/** `what` names the command in messages ("restore", "export"); `context` goes into errors (e.g. the disk). */
export async function writeNewFile<T>(
  target: string,
  what: string,
  fill: (handle: fs.FileHandle) => Promise<T>,
  context: ErrorContext = {},
): Promise<T> {
  const partial = `${target}.partial`;
  // Checked now as well as by link() at the end, so long work does not run only to fail.
  if (await exists(target)) throw targetExists(target, what);
  const handle = await createExclusive(partial, what);
  let result: T;
  try {
    result = await fill(handle);
    await handle.sync();
    await handle.close();
  } catch (error) {
    await handle.close().catch(() => undefined);
    await fs.rm(partial, { force: true });
    throw error instanceof SnaplogError ? error : fromSystemError(error, { ...context, path: target });
  }
  await linkIntoPlace(partial, target, what);
  return result;
}

async function exists(filePath: string): Promise<boolean> {
  try {
    await fs.lstat(filePath);
    return true;
  } catch {
    return false;
  }
}

function targetExists(target: string, what: string): SnaplogError {
  return new SnaplogError(ErrorCodes.ALREADY_EXISTS, `${target} already exists; ${what} writes a new file`, {
    path: target,
    hint: `remove it or choose another path to ${what} to`,
  });
}

async function createExclusive(partial: string, what: string): Promise<fs.FileHandle> {
  try {
    return await fs.open(partial, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o644);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") {
      throw new SnaplogError(
        ErrorCodes.ALREADY_EXISTS,
        `${partial} already exists; ${what} writes there first and never overwrites a file`,
        {
          path: partial,
          hint: `remove it if an interrupted ${what} left it, or choose another path`,
        },
      );
    }
    throw fromSystemError(error, { path: partial });
  }
}

async function linkIntoPlace(partial: string, target: string, what: string): Promise<void> {
  try {
    await fs.link(partial, target);
  } catch (error) {
    await fs.rm(partial, { force: true });
    if ((error as NodeJS.ErrnoException).code === "EEXIST") throw targetExists(target, what);
    throw fromSystemError(error, { path: target });
  }
  try {
    await fs.unlink(partial);
    const directory = await fs.open(path.dirname(path.resolve(target)), fsConstants.O_RDONLY);
    await directory.sync().finally(() => directory.close());
  } catch (error) {
    throw new SnaplogError(
      ErrorCodes.IO,
      `${target} is written, but ${partial} could not then be removed and the directory synced: ${fromSystemError(error, {}).message}`,
      {
        path: partial,
        cause: error,
        hint: `${target} is complete; remove ${partial} by hand`,
      },
    );
  }
}
