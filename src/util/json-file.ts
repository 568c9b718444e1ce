import { promises as fs } from "node:fs";
import * as path from "node:path";
import { crc32c } from "./crc32c.js";
import { ErrorCodes, fromSystemError, SnaplogError } from "./errors.js";

/**
 * Small metadata files (store.json, disk.json): JSON with a CRC32C of the body, replaced
 * atomically (temp file, fsync, rename, directory fsync), so a crash leaves the old or the
 * new version, and a flipped bit is detected. The encoding is apart from the file system so
 * that a file under a disk can be written through that disk's medium (store/medium-json.ts).
 */
export function encodeJsonFile(body: unknown): Buffer {
  const text = JSON.stringify(body, null, 2);
  return Buffer.from(JSON.stringify({ crc32c: crc32c(Buffer.from(text, "utf8")), body: JSON.parse(text) as unknown }, null, 2) + "\n");
}

/** The body of an encoded file; CORRUPT (naming `filePath`) when it is not JSON or its checksum fails. */
export function decodeJsonFile<T>(text: string, filePath: string): T {
  const corrupt = (why: string) => new SnaplogError(ErrorCodes.CORRUPT, `${filePath} is corrupt: ${why}`, { path: filePath });
  let wrapped: { crc32c?: unknown; body?: unknown };
  try {
    wrapped = JSON.parse(text) as { crc32c?: unknown; body?: unknown };
  } catch {
    throw corrupt("not JSON");
  }
  const bodyText = JSON.stringify(wrapped.body, null, 2);
  if (typeof wrapped.crc32c !== "number" || crc32c(Buffer.from(bodyText ?? "", "utf8")) !== wrapped.crc32c) {
    throw corrupt("checksum mismatch");
  }
  return wrapped.body as T;
}

export async function writeJsonFile(filePath: string, body: unknown): Promise<void> {
  const temporary = `${filePath}.tmp`;
  try {
    const handle = await fs.open(temporary, "w", 0o644);
    try {
      await handle.writeFile(encodeJsonFile(body));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(temporary, filePath);
    const directory = await fs.open(path.dirname(filePath), "r");
    try {
      await directory.sync();
    } finally {
      await directory.close();
    }
  } catch (error) {
    throw fromSystemError(error, { path: filePath });
  }
}

export async function readJsonFile<T>(filePath: string): Promise<T> {
  let text: string;
  try {
    text = await fs.readFile(filePath, "utf8");
  } catch (error) {
    throw fromSystemError(error, { path: filePath });
  }
  return decodeJsonFile<T>(text, filePath);
}

/** The file's body, or undefined when there is no such file (a missing list is an empty one). */
export async function readJsonFileIfExists<T>(filePath: string): Promise<T | undefined> {
  try {
    await fs.access(filePath);
  } catch {
    return undefined;
  }
  return readJsonFile<T>(filePath);
}
