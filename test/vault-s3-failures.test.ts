/**
 * Goal: an S3 vault that loses its endpoint fails clearly and leaves nothing half-visible
 * (SPEC §5.3; prior art: leftover multipart uploads are invisible and billed). Method: a
 * throwaway Ceph RGW (test/support/ceph-rgw.ts); kill radosgw (SIGKILL, the mon and OSD keep
 * running) while a 70 MiB put is uploading its parts, then check that put() rejects with
 * VAULT_UNREACHABLE naming the vault, that list() never shows the key, and that after radosgw
 * is back a new put succeeds and sweepIncomplete aborts the upload the killed put left. Also: an
 * endpoint nobody listens on fails within seconds, not a hang.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import { CreateBucketCommand, ListMultipartUploadsCommand } from "@aws-sdk/client-s3";
import { ErrorCodes } from "../src/util/errors.js";
import { openVault, type Vault } from "../src/vault/index.js";
import { CEPH_PACKAGES, missingCephBinaries, startCephRgwOrSkip, type CephRgw } from "./support/ceph-rgw.js";
import { closedPort, collect, MiB, sha256 } from "./support/vault-conformance.js";
import { waitFor } from "./support/wait-for.js";

const skip =
  missingCephBinaries().length > 0 && !process.env.CI
    ? `Ceph RGW not installed (apt-get install -y --no-install-recommends ${CEPH_PACKAGES})`
    : undefined;
if (skip !== undefined) process.stderr.write(`\n*** SKIPPING the S3 vault failure tests: ${skip} ***\n\n`);

const bucket = "failures";
const prefix = "vault/";
let rgw: CephRgw | undefined;
let vault: Vault | undefined;

before(async () => {
  if (skip !== undefined) return;
  rgw = await startCephRgwOrSkip();
  assert.ok(rgw);
  await rgw.client.send(new CreateBucketCommand({ Bucket: bucket }));
  process.env.AWS_ACCESS_KEY_ID = rgw.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = rgw.secretAccessKey;
  vault = openVault(`s3://${bucket}/${prefix}?endpoint=${rgw.endpoint}&region=${rgw.region}`);
  await vault.init();
});

after(async () => {
  await vault?.close();
  await rgw?.stop();
});

async function unfinishedUploads(): Promise<string[]> {
  assert.ok(rgw);
  const answer = await rgw.client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
  return (answer.Uploads ?? []).map((upload) => upload.Key ?? "");
}

test(
  "radosgw killed mid-upload: VAULT_UNREACHABLE, nothing listed; after restart a put works and the sweep aborts the leftover",
  { skip, timeout: 180_000 },
  async () => {
    assert.ok(rgw && vault);
    const key = "chains/c1/0001-full/part-000001.slar";
    const body = randomBytes(70 * MiB);

    const started = Date.now();
    const putting = vault.put(key, body);
    const outcome = putting.then(
      () => undefined,
      (error: unknown) => error,
    );
    // Kill radosgw once the multipart upload exists (its parts are then on the wire).
    await waitFor("the multipart upload to start", async () => (await unfinishedUploads()).includes(`${prefix}${key}`), 30_000);
    await rgw.killRadosgw();

    const error = (await outcome) as (Error & { code?: string; hint?: string }) | undefined;
    assert.ok(error !== undefined, "put() rejected");
    assert.equal(error.code, ErrorCodes.VAULT_UNREACHABLE, error.message);
    assert.match(
      error.message,
      new RegExp(
        `^vault s3://${bucket}/vault\\?endpoint=${rgw.endpoint}&region=us-east-1 unreachable: .*(ECONNREFUSED|ECONNRESET|socket hang up|EPIPE)`,
      ),
    );
    assert.ok(Date.now() - started < 30_000 + 30_000, "failed within the bound, not a hang");

    await rgw.startRadosgw();
    assert.deepEqual(await collect(vault.list("")), [], "the killed put is not listed");
    assert.equal(await vault.head(key), undefined);
    assert.deepEqual(await unfinishedUploads(), [`${prefix}${key}`], "its multipart upload is left (the abort could not reach radosgw)");

    await vault.put(key, body);
    assert.equal(sha256(await vault.get(key)), sha256(body));
    assert.deepEqual(await collect(vault.list("")), [{ key, sizeBytes: body.length }]);

    assert.equal(await vault.sweepIncomplete(0), 1);
    assert.deepEqual(await unfinishedUploads(), [], "the sweep aborted it");
    assert.equal(sha256(await vault.get(key)), sha256(body), "the complete object is untouched");
  },
);

test("an endpoint nobody listens on: VAULT_UNREACHABLE within seconds", { timeout: 60_000 }, async () => {
  const port = await closedPort();
  const dead = openVault(`s3://${bucket}/${prefix}?endpoint=http://127.0.0.1:${port}&region=us-east-1`);
  process.env.AWS_ACCESS_KEY_ID ??= "AKIAEXAMPLE";
  process.env.AWS_SECRET_ACCESS_KEY ??= "secret";
  const started = Date.now();
  for (const operation of [() => dead.init(), () => dead.put("k", Buffer.from("x")), () => collect(dead.list(""))]) {
    await assert.rejects(operation(), (error: Error & { code?: string }) => {
      assert.equal(error.code, ErrorCodes.VAULT_UNREACHABLE, error.message);
      assert.match(error.message, new RegExp(`unreachable: connect ECONNREFUSED 127\\.0\\.0\\.1:${port}`));
      return true;
    });
  }
  assert.ok(Date.now() - started < 30_000, `took ${Date.now() - started} ms`);
  await dead.close();
});

test("a credentials file that does not exist: VAULT_DENIED, not a network error", async () => {
  const port = await closedPort();
  const vault = openVault(`s3://${bucket}/${prefix}?endpoint=http://127.0.0.1:${port}`, { credentialsFile: "/nonexistent/credentials" });
  await assert.rejects(vault.init(), { code: ErrorCodes.VAULT_DENIED, message: /no usable credentials/ });
  await vault.close();
});
