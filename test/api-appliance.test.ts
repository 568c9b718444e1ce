/**
 * Goal: the appliance wiring (src/server/appliance.ts) works in-process, as tests of other
 * layers will use it: --demo creates store and disk, the API answers on the store's socket
 * through ApiClient with the real Store behind it, /metrics carries the NBD metrics, and
 * close() releases everything so the store opens directly afterwards. Method: startAppliance
 * on a temp store with an ephemeral NBD port; close registered first.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ApiClient } from "../src/api/client.js";
import { startAppliance, type Appliance } from "../src/server/appliance.js";
import { apiSocketPath } from "../src/store/paths.js";
import { Store } from "../src/store/store.js";
import { ErrorCodes, SnaplogError } from "../src/util/errors.js";

const directory = mkdtempSync(join(tmpdir(), "snaplog-appliance-"));
const storePath = join(directory, "store");
let appliance: Appliance | undefined;

after(async () => {
  await appliance?.close();
  rmSync(directory, { recursive: true, force: true });
});

function getText(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath: apiSocketPath(storePath), path }, (response) => {
        let text = "";
        response.on("data", (chunk: Buffer) => (text += chunk.toString()));
        response.on("end", () => resolve(text));
      })
      .on("error", reject);
  });
}

test("startAppliance --demo serves the real store over the API, and close() releases it", async () => {
  appliance = await startAppliance({ storePath, nbd: { host: "127.0.0.1", port: 0 }, demo: true });
  assert.match(appliance.endpoints[0], /^nbd: nbd:\/\/127\.0\.0\.1:[1-9]\d*\/demo$/);
  assert.deepEqual(appliance.endpoints.slice(1), [`api: unix:${apiSocketPath(storePath)}`]);

  const client = await ApiClient.connectIfRunning(storePath);
  assert.ok(client);
  assert.deepEqual(
    (await client.listDisks()).map((disk) => disk.name),
    ["demo"],
  );
  const status = await client.status();
  assert.equal(status.mode, "server");
  assert.deepEqual(status.nbd, appliance.nbdUrls);
  const snapshot = await client.createSnapshot({ disk: "demo", name: "s1" });
  assert.equal(snapshot.disk, "demo");
  await assert.rejects(
    client.createSnapshot({ disk: "demo", name: "s1" }),
    (error: unknown) => error instanceof SnaplogError && error.code === ErrorCodes.ALREADY_EXISTS,
  );
  await assert.rejects(client.showDisk("ghost"), (error: unknown) => error instanceof SnaplogError && error.code === ErrorCodes.NOT_FOUND);

  const metrics = await getText("/metrics");
  for (const name of [
    "snaplog_nbd_connections",
    "snaplog_nbd_requests_total",
    "snaplog_nbd_read_bytes_total",
    "snaplog_nbd_written_bytes_total",
  ]) {
    assert.match(metrics, new RegExp(`^${name} \\d+$`, "m"));
  }

  await appliance.close();
  await appliance.close(); // idempotent
  appliance = undefined;
  assert.equal(existsSync(apiSocketPath(storePath)), false);
  assert.equal(await ApiClient.connectIfRunning(storePath), undefined);
  const store = await Store.open(storePath, { mode: "direct" });
  try {
    assert.deepEqual(
      (await store.listSnapshots("demo")).map((s) => s.name),
      ["s1"],
    );
  } finally {
    await store.close();
  }
});

test("startAppliance without a store fails with NO_STORE and leaves nothing behind", async () => {
  const missing = join(directory, "missing");
  await assert.rejects(
    startAppliance({ storePath: missing, nbd: { host: "127.0.0.1", port: 0 } }),
    (error: unknown) => error instanceof SnaplogError && error.code === ErrorCodes.NO_STORE,
  );
  assert.equal(existsSync(missing), false);
});
