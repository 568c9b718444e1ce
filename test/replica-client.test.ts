/**
 * Goal: a sender's batch request (src/store/replication/replica-client.ts, node:http with the
 * export as a streamed body) reports what the receiver said, also when the receiver answers
 * before reading the body and closes the connection (a refused token, a refused batch), and
 * reports an unreachable receiver as SNAPLOG_CLOSED when it drops the connection without an
 * answer; the export feeding the body is stopped either way, never left waiting on a full pipe.
 * Method: real HTTP servers on loopback that answer early, acknowledge after reading the whole
 * body, or cut the socket; a body far larger than the socket buffers (64 MiB).
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { PassThrough } from "node:stream";
import { once } from "node:events";
import { test } from "node:test";
import { ReplicaClient } from "../src/store/replication/replica-client.js";
import { SnaplogError } from "../src/util/errors.js";

const MiB = 1024 * 1024;

async function withServer(handler: http.RequestListener, body: (client: ReplicaClient) => Promise<void>): Promise<void> {
  const server = http.createServer(handler);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  try {
    await body(new ReplicaClient({ baseUrl: `http://127.0.0.1:${port}`, disk: "vm1", url: `snaplog://127.0.0.1:${port}/vm1` }, "token"));
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

/** A body as the relation makes it: written with backpressure; resolves with how it ended. */
function exportInto(bytes: number): { body: PassThrough; done: Promise<string> } {
  const body = new PassThrough({ highWaterMark: 4 * MiB });
  const chunk = Buffer.alloc(MiB, 7);
  const done = (async () => {
    for (let sent = 0; sent < bytes; sent += chunk.length) if (!body.write(chunk)) await once(body, "drain");
    body.end();
    return "finished";
  })().catch((error: unknown) => `stopped: ${error instanceof Error ? error.message : String(error)}`);
  return { body, done };
}

test("a receiver's early refusal is reported as its error, and the export behind the body stops", async () => {
  await withServer(
    (request, response) => {
      response.writeHead(401, { "content-type": "application/json", connection: "close" });
      response.end(JSON.stringify({ error: { code: "SNAPLOG_UNAUTHORIZED", message: "bad token" } }));
      request.socket.end();
    },
    async (client) => {
      const { body, done } = exportInto(64 * MiB);
      await assert.rejects(client.batch(body), (error: unknown) => {
        assert.ok(error instanceof SnaplogError);
        assert.match(error.message, /refused the token \(HTTP 401\)/);
        return true;
      });
      assert.match(await done, /^stopped: .*answered before the batch was sent/);
    },
  );
});

test("a batch read whole and acknowledged returns the receiver's acknowledgement", async () => {
  let received = 0;
  await withServer(
    (request, response) => {
      request.on("data", (chunk: Buffer) => (received += chunk.length));
      request.on("end", () => {
        response.writeHead(200, { "content-type": "application/json" });
        response.end(JSON.stringify({ disk: "vm1", ackedLsn: 42, ackedTimeMs: 1, snapshots: [], blockCount: 0 }));
      });
    },
    async (client) => {
      const { body, done } = exportInto(16 * MiB);
      const ack = await client.batch(body);
      assert.equal(ack.ackedLsn, 42);
      assert.equal(await done, "finished");
      assert.equal(received, 16 * MiB);
    },
  );
});

test("a receiver that drops the connection without an answer is unreachable (SNAPLOG_CLOSED)", async () => {
  await withServer(
    (request) => {
      request.once("data", () => request.socket.destroy());
    },
    async (client) => {
      const { body, done } = exportInto(64 * MiB);
      await assert.rejects(client.batch(body), (error: unknown) => {
        assert.ok(error instanceof SnaplogError);
        assert.equal(error.code, "SNAPLOG_CLOSED");
        assert.match(error.message, /unreachable/);
        return true;
      });
      assert.match(await done, /^stopped: /);
    },
  );
});
