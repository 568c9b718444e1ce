import { promises as fs } from "node:fs";
import * as path from "node:path";
import { crc32c } from "./crc32c.js";
import { ErrorCodes, fromSystemError, SnaplogError } from "./errors.js";

/**
 * Small metadata files (store.json, disk.json): JSON with a CRC32C of the body, replaced
 * atomically (temp file, fsync, rename, directory fsync), so a crash leaves the old or the
 * new version, and a flipped bit is detected.
 */
export async function writeJsonFile(filePath: string, body: unknown): Promise<void> {
  const text = JSON.stringify(body, null, 2);
  const wrapped = JSON.stringify({ crc32c: crc32c(Buffer.from(text, "utf8")), body: JSON.parse(text) as unknown }, null, 2) + "\n";
  const temporary = `${filePath}.tmp`;
  try {
    const handle = await fs.open(temporary, "w", 0o644);
    try {
      await handle.writeFile(wrapped, "utf8");
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
