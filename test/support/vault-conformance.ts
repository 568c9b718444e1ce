/**
 * The one contract every vault target keeps (src/vault/vault.ts), as a suite run against each
 * target (STYLE "One contract suite, every implementation"): put/get/head, list (sorted, by
 * prefix, never a temp file or an unfinished upload), overwrite, delete, NOT_FOUND naming the
 * key, bad keys refused, a 70 MiB object byte-exact (multipart on S3), concurrent puts, and
 * sweepIncomplete removing what an interrupted put left behind.
 *
 * The target gives the vault and two hooks that reach under it: leaving an unfinished put
 * behind (a temp file; a multipart upload never completed) and counting those.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { createServer } from "node:net";
import { after, before, describe, test } from "node:test";
import type { Vault, VaultObjectInfo } from "../../src/vault/index.js";
import { ErrorCodes } from "../../src/util/errors.js";

export const MiB = 1024 * 1024;
const largeObjectBytes = 70 * MiB;
const weekMs = 7 * 24 * 3600 * 1000;

export interface VaultUnderTest {
  vault: Vault;
  /** Leaves what a put of `key` killed midway leaves behind (not visible as `key`). */
  leaveIncomplete(key: string): Promise<void>;
  /** How many leftovers of unfinished puts the target holds now. */
  incompleteCount(): Promise<number>;
  /** Extra checks on how a large object was stored (S3: multipart). */
  checkLargeObject?(key: string): Promise<void>;
  close(): Promise<void>;
}

/** `open` runs in before(); `skip` (a reason) skips the whole suite. */
export function describeVaultConformance(name: string, open: () => Promise<VaultUnderTest | undefined>, skip?: string): void {
  describe(`vault conformance: ${name}`, { skip }, () => {
    let target: VaultUnderTest | undefined;
    const vault = (): Vault => {
      assert.ok(target, "the target started");
      return target.vault;
    };
    before(async () => {
      target = await open();
      if (target !== undefined) await target.vault.init();
    });
    after(async () => {
      await target?.close();
    });

    test("init is idempotent; description has no secret", async () => {
      await vault().init();
      await vault().init();
      assert.doesNotMatch(vault().description, /secret|token|password/i);
    });

    test("put, get, head; head of an absent key is undefined", async () => {
      const body = Buffer.from("hello vault\n");
      await vault().put("basic/snaplog-vault.json", body);
      assert.deepEqual(await vault().get("basic/snaplog-vault.json"), body);
      assert.deepEqual(await vault().head("basic/snaplog-vault.json"), { key: "basic/snaplog-vault.json", sizeBytes: body.length });
      assert.equal(await vault().head("basic/absent"), undefined);
      await vault().put("basic/empty", Buffer.alloc(0));
      assert.equal((await vault().get("basic/empty")).length, 0);
      assert.deepEqual(await vault().head("basic/empty"), { key: "basic/empty", sizeBytes: 0 });
    });

    test("list: every object under a prefix, sorted by key, with sizes", async () => {
      const keys = ["sorted/b", "sorted/a/b/2", "sorted/ab", "sorted/a/c", "sorted/a/b/10", "sorted/a/b/1", "sortedx"];
      for (const [index, key] of keys.entries()) await vault().put(key, Buffer.alloc(index + 1, index));
      const sizeOf = (key: string) => keys.indexOf(key) + 1;
      const expect = (chosen: string[]): VaultObjectInfo[] => chosen.map((key) => ({ key, sizeBytes: sizeOf(key) }));
      assert.deepEqual(await collect(vault().list("sorted/a/")), expect(["sorted/a/b/1", "sorted/a/b/10", "sorted/a/b/2", "sorted/a/c"]));
      assert.deepEqual(
        await collect(vault().list("sorted/a")),
        expect(["sorted/a/b/1", "sorted/a/b/10", "sorted/a/b/2", "sorted/a/c", "sorted/ab"]),
      );
      assert.deepEqual(await collect(vault().list("sorted/a/b/1")), expect(["sorted/a/b/1", "sorted/a/b/10"]));
      assert.deepEqual(await collect(vault().list("sorted")), expect([...keys].sort()));
      assert.deepEqual(await collect(vault().list("nothing-here/")), []);
      const all = await collect(vault().list(""));
      assert.deepEqual(
        all.map((object) => object.key),
        all.map((object) => object.key).sort(),
        "list('') is sorted too",
      );
    });

    test("overwrite replaces the whole object", async () => {
      await vault().put("overwrite/k", Buffer.alloc(1000, 1));
      await vault().put("overwrite/k", Buffer.from("short"));
      assert.deepEqual(await vault().get("overwrite/k"), Buffer.from("short"));
      assert.deepEqual(await collect(vault().list("overwrite/")), [{ key: "overwrite/k", sizeBytes: 5 }]);
    });

    test("delete: gone from get, head and list; an absent key is no error", async () => {
      await vault().put("delete/a", Buffer.from("a"));
      await vault().put("delete/b", Buffer.from("b"));
      await vault().delete(["delete/a", "delete/never-was"]);
      await vault().delete([]);
      assert.equal(await vault().head("delete/a"), undefined);
      await assert.rejects(vault().get("delete/a"), { code: ErrorCodes.NOT_FOUND });
      assert.deepEqual(await collect(vault().list("delete/")), [{ key: "delete/b", sizeBytes: 1 }]);
    });

    test("get of an absent key is NOT_FOUND naming the key", async () => {
      await assert.rejects(vault().get("missing/part-000003.slar"), (error: Error & { code?: string }) => {
        assert.equal(error.code, ErrorCodes.NOT_FOUND);
        assert.match(error.message, /missing\/part-000003\.slar/);
        return true;
      });
    });

    test("bad keys and prefixes are refused (INVALID_ARGUMENT) before anything is stored", async () => {
      const badKeys = ["", "/abs", "a/../b", "..", ".", "a//b", "a/", "a b", "a\\b", "é", "a?b", ".tmp-x", "a/.hidden", "x".repeat(1025)];
      for (const key of badKeys) {
        const why = `key ${JSON.stringify(key)}`;
        await assert.rejects(vault().put(key, Buffer.from("x")), { code: ErrorCodes.INVALID_ARGUMENT }, why);
        await assert.rejects(vault().get(key), { code: ErrorCodes.INVALID_ARGUMENT }, why);
        await assert.rejects(vault().head(key), { code: ErrorCodes.INVALID_ARGUMENT }, why);
        await assert.rejects(vault().delete(["ok-key", key]), { code: ErrorCodes.INVALID_ARGUMENT }, why);
      }
      for (const prefix of ["/", "../", "a//", "a/..", "a b"]) {
        await assert.rejects(collect(vault().list(prefix)), { code: ErrorCodes.INVALID_ARGUMENT }, `prefix ${prefix}`);
      }
      const good = ["stores/s1/disks/d1/chains/c1/0001-full/part-000003.slar", "a@b_c-d.e", "snaplog-vault.json"];
      for (const key of good) await vault().put(key, Buffer.from(key));
      for (const key of good) assert.deepEqual(await vault().get(key), Buffer.from(key));
    });

    test("a 70 MiB object round-trips byte-exact", { timeout: 180_000 }, async () => {
      const body = randomBytes(largeObjectBytes);
      const key = "large/part-000001.slar";
      await vault().put(key, body);
      assert.deepEqual(await vault().head(key), { key, sizeBytes: largeObjectBytes });
      const back = await vault().get(key);
      assert.equal(back.length, largeObjectBytes);
      assert.equal(sha256(back), sha256(body));
      assert.ok(back.equals(body));
      await target?.checkLargeObject?.(key);
      await vault().delete([key]);
    });

    test("concurrent puts of different keys all land", async () => {
      const keys = Array.from({ length: 12 }, (_, index) => `concurrent/k${String(index).padStart(2, "0")}`);
      await Promise.all(keys.map((key) => vault().put(key, Buffer.from(key))));
      assert.deepEqual(
        (await collect(vault().list("concurrent/"))).map((object) => object.key),
        keys,
      );
    });

    test("list never shows an unfinished put; sweepIncomplete removes it", async () => {
      assert.ok(target);
      await vault().put("incomplete/kept", Buffer.from("complete"));
      const before = await target.incompleteCount();
      await target.leaveIncomplete("incomplete/part-000009.slar");
      assert.equal(await target.incompleteCount(), before + 1, "the leftover is there");
      assert.deepEqual(await collect(vault().list("incomplete/")), [{ key: "incomplete/kept", sizeBytes: 8 }]);
      assert.equal(await vault().head("incomplete/part-000009.slar"), undefined);
      assert.ok(
        (await collect(vault().list(""))).every((object) => !object.key.includes(".tmp-")),
        "no temp file listed",
      );

      assert.equal(await vault().sweepIncomplete(weekMs), 0, "nothing is a week old");
      assert.equal(await target.incompleteCount(), before + 1);
      assert.ok((await vault().sweepIncomplete(0)) >= 1);
      assert.equal(await target.incompleteCount(), 0, "every leftover is gone");
      assert.deepEqual(await vault().get("incomplete/kept"), Buffer.from("complete"), "complete objects are untouched");
    });
  });
}

export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

/** A port nothing listens on (the kernel's choice for port 0, released at once). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export function sha256(bytes: Buffer): string {
  return createHash("sha256").update(bytes).digest("hex");
}
