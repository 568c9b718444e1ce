/** Free (for unprivileged users) and total bytes of the file system holding `directory`, as `df` shows them. */
import { promises as fs } from "node:fs";

export async function fileSystemSpace(directory: string): Promise<{ freeBytes: number; totalBytes: number }> {
  const stat = await fs.statfs(directory);
  return { freeBytes: stat.bavail * stat.bsize, totalBytes: stat.blocks * stat.bsize };
}
