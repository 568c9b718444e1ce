/**
 * Goal: a directory vault on a full file system fails with NO_SPACE and leaves no partial
 * object and no temp file (the all-or-nothing rule of put). Method: mount a 16 MiB tmpfs in a
 * temp directory (we run as root; without mount rights the test skips loudly, and fails under
 * CI), put a 20 MiB object, then check the error, list(), and the directory's every file.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync } from "node:fs";
import * as path from "node:path";
import { after, test } from "node:test";
import { ErrorCodes } from "../src/util/errors.js";
import { openVault } from "../src/vault/index.js";
import { tempDir } from "./support/temp-dir.js";
import { collect, MiB } from "./support/vault-conformance.js";

// Registered before tempDir's own after(): hooks run in order, and a mounted directory cannot be removed.
let mounted = false;
after(() => {
  if (mounted) spawnSync("umount", [mountPoint]);
});
const mountPoint = path.join(tempDir("vault-full"), "small");
mkdirSync(mountPoint);
const mount = spawnSync("mount", ["-t", "tmpfs", "-o", "size=16m", "tmpfs", mountPoint], { encoding: "utf8" });
mounted = mount.status === 0;
const skip = mounted ? undefined : `cannot mount a tmpfs (${(mount.stderr || mount.error?.message || "").trim()}): needs root`;
if (skip !== undefined) {
  if (process.env.CI) throw new Error(`CI: ${skip}`);
  process.stderr.write(`\n*** SKIPPING the full-file-system vault test: ${skip} ***\n\n`);
}

test("a full file system: NO_SPACE, nothing listed, no temp file left; smaller puts still work", { skip }, async () => {
  const vault = openVault(`file://${mountPoint}/vault`);
  await vault.init();
  await vault.put("before/small", Buffer.from("fits"));
  const key = "chains/c1/0001-full/part-000001.slar";
  await assert.rejects(vault.put(key, randomBytes(20 * MiB)), (error: Error & { code?: string; hint?: string }) => {
    assert.equal(error.code, ErrorCodes.NO_SPACE, error.message);
    assert.match(error.message, new RegExp(`vault file://${mountPoint}/vault: cannot store ${key}: no space left`));
    assert.match(error.hint ?? "", /free space/);
    return true;
  });
  assert.deepEqual(await collect(vault.list("")), [{ key: "before/small", sizeBytes: 4 }]);
  assert.equal(await vault.head(key), undefined);
  const files = readdirSync(path.join(mountPoint, "vault"), { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile());
  assert.deepEqual(
    files.map((entry) => path.relative(path.join(mountPoint, "vault"), path.join(entry.parentPath, entry.name))),
    ["before/small"],
    "no temp file, no partial object",
  );
  await vault.put("after/small", randomBytes(MiB));
  assert.equal((await vault.head("after/small"))?.sizeBytes, MiB);
});
