/**
 * Goal: the three vault targets keep one contract (src/vault/vault.ts). Method: the suite of
 * test/support/vault-conformance.ts against
 *   - file:///…   a fresh directory (made by init, its parent exists);
 *   - s3://…      a throwaway Ceph RGW (test/support/ceph-rgw.ts), one for this file, a fresh
 *                 bucket; leftovers are real multipart uploads (CreateMultipartUpload +
 *                 UploadPart, never completed); large objects must have gone multipart;
 *   - snaplog://… a real `snaplog serve --api 127.0.0.1:0` child with its token; objects must
 *                 land under STORE/vault/, and a wrong token is a clear VAULT_DENIED.
 * Without the Ceph packages the S3 suite skips loudly (fails under CI).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { promises as fs, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { after, describe, test } from "node:test";
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { ErrorCodes } from "../src/util/errors.js";
import { openVault, TEMP_FILE_PREFIX } from "../src/vault/index.js";
import { CEPH_PACKAGES, missingCephBinaries, startCephRgwOrSkip, type CephRgw } from "./support/ceph-rgw.js";
import { killServeChildren, startApiServeChild, type ApiServeChild } from "./support/serve-child.js";
import { tempDir } from "./support/temp-dir.js";
import { closedPort, describeVaultConformance, MiB, type VaultUnderTest } from "./support/vault-conformance.js";

/** Temp files of unfinished puts under a directory vault (what a kill -9 mid-put leaves). */
async function temporaryFiles(directory: string): Promise<string[]> {
  const entries = await fs.readdir(directory, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((entry) => entry.isFile() && entry.name.startsWith(TEMP_FILE_PREFIX))
    .map((entry) => path.join(entry.parentPath, entry.name));
}

/** Leaves a temp file beside where `key` would go, as a put killed before its rename does. */
async function leaveTemporaryFile(directory: string, key: string): Promise<void> {
  const file = path.join(directory, key);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(path.join(path.dirname(file), `${TEMP_FILE_PREFIX}0123456789ab-${path.basename(file)}`), randomBytes(4096));
}

// Temp directories are made here, at load: tempDir's after() must belong to the file, not to a hook.
const directoryParent = tempDir("vault-dir");
const s3Files = tempDir("vault-s3");
const peerParent = tempDir("vault-peer");

describeVaultConformance("directory", async (): Promise<VaultUnderTest> => {
  const directory = path.join(directoryParent, "vault");
  const vault = openVault(`file://${directory}`);
  return {
    vault,
    leaveIncomplete: (key) => leaveTemporaryFile(directory, key),
    incompleteCount: async () => (await temporaryFiles(directory)).length,
    close: () => vault.close(),
  };
});

describe("directory vault: init", () => {
  test("makes the directory when its parent exists; NOT_FOUND naming the parent otherwise", async () => {
    const parent = tempDir("vault-init");
    await openVault(`file://${parent}/made`).init();
    assert.ok((await fs.stat(path.join(parent, "made"))).isDirectory());
    await assert.rejects(openVault(`file://${parent}/no/such`).init(), (error: Error & { code?: string }) => {
      assert.equal(error.code, ErrorCodes.NOT_FOUND);
      assert.match(error.message, new RegExp(`${parent}/no does not exist`));
      return true;
    });
  });

  test("a stale temp file is swept, a fresh one (a put under way) is kept", async () => {
    const directory = path.join(tempDir("vault-sweep"), "vault");
    const vault = openVault(`file://${directory}`);
    await vault.init();
    await leaveTemporaryFile(directory, "a/b/fresh");
    await leaveTemporaryFile(directory, "a/stale");
    const [stale] = (await temporaryFiles(directory)).filter((file) => file.endsWith("-stale"));
    const hourAgo = new Date(Date.now() - 3600_000);
    await fs.utimes(stale, hourAgo, hourAgo);
    assert.equal(await vault.sweepIncomplete(600_000), 1);
    assert.deepEqual(
      (await temporaryFiles(directory)).map((file) => path.basename(file)),
      [`${TEMP_FILE_PREFIX}0123456789ab-fresh`],
    );
  });
});

// ---- S3 on a throwaway Ceph RGW ------------------------------------------------------------

const cephMissing = missingCephBinaries();
const s3Skip =
  cephMissing.length > 0 && !process.env.CI
    ? `Ceph RGW not installed (apt-get install -y --no-install-recommends ${CEPH_PACKAGES})`
    : undefined;
if (s3Skip !== undefined) process.stderr.write(`\n*** SKIPPING the S3 vault conformance suite: ${s3Skip} ***\n\n`);
let rgw: CephRgw | undefined;
after(async () => {
  await rgw?.stop();
});

describeVaultConformance(
  "s3 (Ceph RGW)",
  async (): Promise<VaultUnderTest | undefined> => {
    rgw = await startCephRgwOrSkip();
    if (rgw === undefined) return undefined;
    const { client } = rgw;
    const bucket = "conformance";
    const prefix = "vaults/one/";
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    const credentialsFile = path.join(s3Files, "credentials");
    writeFileSync(credentialsFile, `[default]\naws_access_key_id = ${rgw.accessKeyId}\naws_secret_access_key = ${rgw.secretAccessKey}\n`);
    const vault = openVault(`s3://${bucket}/${prefix}?endpoint=${rgw.endpoint}&region=${rgw.region}`, { credentialsFile });
    const uploads = async () => (await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }))).Uploads ?? [];
    return {
      vault,
      leaveIncomplete: async (key) => {
        const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: `${prefix}${key}` }));
        await client.send(
          new UploadPartCommand({ Bucket: bucket, Key: `${prefix}${key}`, UploadId, PartNumber: 1, Body: randomBytes(5 * MiB) }),
        );
      },
      incompleteCount: async () => (await uploads()).length,
      checkLargeObject: async (key) => {
        // A multipart object's ETag is "<md5 of the part md5s>-<part count>": 70 MiB in 8 MiB parts is 9.
        const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: `${prefix}${key}` }));
        assert.match(head.ETag ?? "", /-9"?$/, `multipart ETag, got ${head.ETag}`);
        assert.deepEqual(await uploads(), [], "no upload left unfinished");
      },
      close: async () => {
        for (const upload of await uploads()) {
          await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.Key, UploadId: upload.UploadId }));
        }
        await vault.close();
      },
    };
  },
  s3Skip,
);

// ---- another appliance: snaplog serve --api ------------------------------------------------

after(killServeChildren);

let peer: ApiServeChild | undefined;

describeVaultConformance("appliance (snaplog serve --api)", async (): Promise<VaultUnderTest> => {
  peer = await startApiServeChild(path.join(peerParent, "store"));
  const area = path.join(peer.storePath, "vault");
  const vault = openVault(`snaplog://127.0.0.1:${peer.port}`, { token: peer.token });
  return {
    vault,
    leaveIncomplete: (key) => leaveTemporaryFile(area, key),
    incompleteCount: async () => (await temporaryFiles(area)).length,
    close: () => vault.close(),
  };
});

describe("appliance vault: where objects land, and the token", () => {
  test("objects land under STORE/vault/, byte for byte", async () => {
    assert.ok(peer, "the conformance suite started the peer");
    const vault = openVault(`snaplog://127.0.0.1:${peer.port}`, { token: peer.token });
    const key = "stores/s1/disks/d1/chains/c1/0001-full/part-000001.slar";
    const body = randomBytes(100_000);
    await vault.put(key, body);
    assert.ok(readFileSync(path.join(peer.storePath, "vault", key)).equals(body));
  });

  test("a wrong token is VAULT_DENIED, saying so", async () => {
    assert.ok(peer);
    const vault = openVault(`snaplog://127.0.0.1:${peer.port}`, { token: "not-the-token" });
    await assert.rejects(vault.init(), (error: Error & { code?: string; hint?: string }) => {
      assert.equal(error.code, ErrorCodes.VAULT_DENIED);
      assert.match(error.message, /snaplog:\/\/127\.0\.0\.1:\d+ refused the token/);
      assert.match(error.hint ?? "", /api\.token/);
      return true;
    });
    await assert.rejects(vault.put("x", Buffer.from("x")), { code: ErrorCodes.VAULT_DENIED });
  });

  test("no token at all is refused before any request", () => {
    const saved = process.env.SNAPLOG_VAULT_TOKEN;
    delete process.env.SNAPLOG_VAULT_TOKEN;
    try {
      assert.throws(() => openVault("snaplog://127.0.0.1:1"), { code: ErrorCodes.INVALID_ARGUMENT, message: /needs the peer's API token/ });
    } finally {
      if (saved !== undefined) process.env.SNAPLOG_VAULT_TOKEN = saved;
    }
  });

  test("a peer that is down is VAULT_UNREACHABLE naming the address, within seconds", async () => {
    const port = await closedPort();
    const vault = openVault(`snaplog://127.0.0.1:${port}`, { token: "t" });
    const started = Date.now();
    await assert.rejects(vault.init(), {
      code: ErrorCodes.VAULT_UNREACHABLE,
      message: new RegExp(`snaplog://127\\.0\\.0\\.1:${port} unreachable: connect ECONNREFUSED 127\\.0\\.0\\.1:${port}`),
    });
    assert.ok(Date.now() - started < 30_000);
  });
});
