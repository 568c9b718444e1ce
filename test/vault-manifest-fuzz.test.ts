/**
 * Goal: a vault's manifests are outside bytes too (issue 13 item 6): whatever a manifest holds —
 * bytes flipped, cut or added, or any field replaced by any JSON value (a part named
 * `../../x`, a negative or huge size, a point that is not one, a stream index that lies) —
 * listing the vault and restoring from it either gives back exactly the archived disk or fails
 * with a typed error, creates no disk, and writes nothing outside the store and the vault.
 * Method: fast-check over mutations of a real manifest in a directory vault made by a real
 * archive; the restore through the Store API; the restored disk compared byte for byte.
 * Runs: 40 from a fixed seed in `npm test`; SNAPLOG_FUZZ_RUNS from a new seed in `npm run fuzz`.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import * as path from "node:path";
import { before, after, test } from "node:test";
import fc from "fast-check";
import { Store } from "../src/store/store.js";
import { SnaplogError } from "../src/util/errors.js";
import { pattern } from "./support/data-pattern.js";
import { withCauseShown } from "./support/fast-check-report.js";
import { readVolume } from "./support/store-fixtures.js";
import { tempDir } from "./support/temp-dir.js";

const MiB = 1024 * 1024;
const BLOCK = 4096;
const root = tempDir("vault-manifest-fuzz");
const sourcePath = path.join(root, "source");
const targetPath = path.join(root, "target");
const vaultDir = path.join(root, "vault");
let target: Store;
let expected: Buffer;
let manifestFile = "";
let pristine: Buffer;
const runs = process.env.SNAPLOG_FUZZ_RUNS === undefined ? { numRuns: 40, seed: 1306 } : { numRuns: Number(process.env.SNAPLOG_FUZZ_RUNS) };

/** Every file under a directory, as relative path → size (what the restore may not add to). */
async function filesUnder(directory: string): Promise<Map<string, number>> {
  const files = new Map<string, number>();
  for (const entry of await fs.readdir(directory, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    files.set(path.relative(directory, file), (await fs.stat(file)).size);
  }
  return files;
}

before(async () => {
  await Store.init(sourcePath);
  await Store.init(targetPath);
  const source = await Store.open(sourcePath, { mode: "direct" });
  try {
    await source.createDisk({ name: "vm", sizeBytes: 2 * MiB });
    const volume = source.resolve("vm");
    await volume.write(0, pattern(1, 64 * BLOCK), { fua: false });
    await source.createSnapshot({ disk: "vm", name: "s1" });
    await volume.write(MiB, pattern(2, 32 * BLOCK), { fua: false });
    await source.createSnapshot({ disk: "vm", name: "s2" });
    volume.release();
    await source.addVault({ name: "v", url: `file://${vaultDir}` });
    await source.archive({ disk: "vm", vault: "v", snapshot: "s1" });
    await source.archive({ disk: "vm", vault: "v", snapshot: "s2" });
    expected = await readVolume(source, "vm@s2");
  } finally {
    await source.close();
  }
  // The incremental stream's manifest: the one a restore of s2 reads last.
  const manifests = [...(await filesUnder(vaultDir)).keys()].filter((key) => key.endsWith("/manifest.json")).sort();
  assert.equal(manifests.length, 2);
  manifestFile = path.join(vaultDir, manifests[1]);
  pristine = await fs.readFile(manifestFile);
  target = await Store.open(targetPath, { mode: "direct" });
  await target.addVault({ name: "v", url: `file://${vaultDir}` });
});

after(() => target?.close());

/** A path into the manifest's JSON: a top-level field, or one inside a part or a point. */
const fieldPath = fc.constantFrom(
  ["format"],
  ["storeId"],
  ["diskId"],
  ["diskName"],
  ["chainId"],
  ["index"],
  ["streamId"],
  ["kind"],
  ["compacted"],
  ["from"],
  ["to"],
  ["to", "lsn"],
  ["to", "id"],
  ["from", "timeMs"],
  ["cuts"],
  ["cuts", 0],
  ["parts"],
  ["parts", 0],
  ["parts", 0, "name"],
  ["parts", 0, "sizeBytes"],
  ["parts", 0, "sha256"],
  ["bytes"],
  ["streamSha256"],
);

/** Values worth trying at any field: any JSON, and the ones that break naive code. */
const hostileValue = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(
    -1,
    0,
    2 ** 53,
    1e300,
    Number.MAX_SAFE_INTEGER,
    "../../escape",
    "../../../../../../../../../escape",
    "/etc/passwd",
    "part-000000",
    "",
    null,
    [],
    {},
  ),
);

type Mutation =
  | { kind: "flip"; at: number; bit: number }
  | { kind: "cut"; at: number }
  | { kind: "insert"; at: number; bytes: Uint8Array }
  | { kind: "set"; path: ReadonlyArray<string | number>; value: unknown };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant("cut" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant("set" as const), path: fieldPath, value: hostileValue }),
  fc.record({ kind: fc.constant("set" as const), path: fieldPath, value: hostileValue }),
);

function apply(bytes: Buffer, change: Mutation): Buffer {
  const at = (n: number) => n % (bytes.length + 1);
  switch (change.kind) {
    case "flip": {
      const copy = Buffer.from(bytes);
      copy[at(change.at) % bytes.length] ^= 1 << change.bit;
      return copy;
    }
    case "cut":
      return bytes.subarray(0, at(change.at));
    case "insert":
      return Buffer.concat([bytes.subarray(0, at(change.at)), change.bytes, bytes.subarray(at(change.at))]);
    case "set": {
      const manifest = JSON.parse(bytes.toString("utf8")) as Record<string | number, unknown>;
      let holder: Record<string | number, unknown> | undefined = manifest;
      for (const key of change.path.slice(0, -1)) {
        const next: unknown = holder?.[key];
        holder = typeof next === "object" && next !== null ? (next as Record<string | number, unknown>) : undefined;
      }
      if (holder !== undefined) holder[change.path[change.path.length - 1]] = change.value;
      return Buffer.from(JSON.stringify(manifest));
    }
  }
}

test("a mutated manifest: the restore is exact or refused with a typed error; nothing is made or written elsewhere", async () => {
  const storeFilesBefore = await filesUnder(path.dirname(targetPath));
  let restored = 0;
  let refused = 0;
  await withCauseShown(() =>
    fc.assert(
      fc.asyncProperty(mutation, async (change) => {
        await fs.writeFile(manifestFile, apply(pristine, change));
        const disksBefore = (await target.listDisks()).map((disk) => disk.name);
        // Listing reads every manifest: it may refuse, never crash.
        await target.listVaultChains("v").catch((error: unknown) => assert.ok(error instanceof SnaplogError, `listing: ${String(error)}`));
        let outcome: "restored" | "refused";
        try {
          await target.restoreFromVault({ vault: "v", source: "vm@s2", as: "r" });
          outcome = "restored";
        } catch (error) {
          assert.ok(error instanceof SnaplogError, `a typed error, not ${(error as Error).stack ?? String(error)}`);
          outcome = "refused";
        }
        if (outcome === "restored") {
          // A change the restore accepted left what matters intact: the disk is exactly s2.
          assert.ok((await readVolume(target, "r@s2")).equals(expected), "restored byte for byte");
          await target.deleteDisk("r");
          restored++;
        } else {
          assert.deepEqual(
            (await target.listDisks()).map((disk) => disk.name),
            disksBefore,
            "a refused restore makes no disk",
          );
          refused++;
        }
      }),
      runs,
    ),
  );
  await fs.writeFile(manifestFile, pristine);
  // Nothing appeared beside the store and the vault (a part named ../../x must not be followed).
  const after = await filesUnder(path.dirname(targetPath));
  for (const file of after.keys()) {
    if (storeFilesBefore.has(file)) continue;
    assert.ok(
      file.startsWith(`target${path.sep}`) || file.startsWith(`vault${path.sep}`),
      `a new file outside the store and the vault: ${file}`,
    );
  }
  assert.ok(refused > 0, "some mutations are refused");
  // The untouched manifest still restores (the loop above did not wear the vault out).
  await target.restoreFromVault({ vault: "v", source: "vm@s2", as: "again" });
  assert.ok((await readVolume(target, "again@s2")).equals(expected));
  assert.ok(restored + refused === runs.numRuns);
});
