/**
 * The metadata files under a disk (disk.json) read and written through the disk's medium, so a
 * test's medium (StoreOpenOptions.mediumFor) sees, and can fail, every file of a disk. Same
 * format and the same atomic replace as util/json-file.ts: temp file, sync, rename, directory sync.
 */
import type { Medium } from "../engine/index.js";
import { decodeJsonFile, encodeJsonFile } from "../util/json-file.js";
import { fromSystemError } from "../util/errors.js";

export async function writeJsonOn(medium: Medium, name: string, body: unknown): Promise<void> {
  const temporary = `${name}.tmp`;
  const bytes = encodeJsonFile(body);
  try {
    const file = await medium.open(temporary, { create: true });
    try {
      await file.truncate(0);
      await file.writev([bytes], 0);
      await file.sync();
    } finally {
      await file.close();
    }
    await medium.rename(temporary, name);
    await medium.syncDirectory();
  } catch (error) {
    throw fromSystemError(error, { path: name });
  }
}

/** `where` names the file in errors (the medium knows it only by its name in the directory). */
export async function readJsonOn<T>(medium: Medium, name: string, where: string): Promise<T> {
  let bytes: Buffer;
  try {
    const file = await medium.open(name, { create: false });
    try {
      bytes = Buffer.alloc(await file.sizeBytes());
      await file.read(bytes, 0);
    } finally {
      await file.close();
    }
  } catch (error) {
    throw fromSystemError(error, { path: where });
  }
  return decodeJsonFile<T>(bytes.toString("utf8"), where);
}
