import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after } from "node:test";

/** A fresh directory under /var/tmp (a real disk, not tmpfs), removed when the test file ends. */
export function tempDir(prefix: string): string {
  const directory = mkdtempSync(
    path.join(process.env.SNAPLOG_TEST_TMPDIR ?? (tmpdir() === "/tmp" ? "/var/tmp" : tmpdir()), `snaplog-${prefix}-`),
  );
  after(() => rmSync(directory, { recursive: true, force: true }));
  return directory;
}
