/**
 * Goal: streamed output (`log`, `diff`; the API's NDJSON and the CLI's text share textBatches)
 * shows a line soon even when the next item is slow to come, and a reader that goes away
 * (`snaplog log vm1 | head`) ends the command quietly with exit 0.
 * Method: the API's sendItemStream on a real socket with an iterator that stalls after its
 * first item, timing when the first line arrives; textBatches directly for size and failure
 * behaviour; the real binary with its stdout closed after the first chunk.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import Fastify from "fastify";
import { batchAgeMsMax, sendItemStream, textBatches } from "../src/api/item-stream.js";
import { snaplogMainPath } from "./support/serve-child.js";
import { storeWithDisk } from "./support/store-fixtures.js";
import { tempDir } from "./support/temp-dir.js";

const stallMs = 1500;

async function* stallingItems(): AsyncGenerator<{ n: number }> {
  yield { n: 1 };
  await sleep(stallMs);
  yield { n: 2 };
}

test("a line waits at most about batchAgeMsMax for company, even when no next item comes", async () => {
  const app = Fastify();
  app.get("/items", (_request, reply) => sendItemStream(reply, stallingItems()));
  await app.listen({ host: "127.0.0.1", port: 0 });
  try {
    const { port } = app.server.address() as AddressInfo;
    const startedMs = performance.now();
    const arrivals = await new Promise<Array<{ ms: number; text: string }>>((resolve, reject) => {
      http
        .get({ host: "127.0.0.1", port, path: "/items" }, (response) => {
          const seen: Array<{ ms: number; text: string }> = [];
          response.on("data", (chunk: Buffer) => seen.push({ ms: performance.now() - startedMs, text: chunk.toString() }));
          response.on("end", () => resolve(seen));
          response.on("error", reject);
        })
        .on("error", reject);
    });
    assert.equal(arrivals.map((arrival) => arrival.text).join(""), '{"n":1}\n{"n":2}\n');
    assert.equal(arrivals[0].text, '{"n":1}\n', "the first line comes alone");
    assert.ok(
      arrivals[0].ms < stallMs / 2,
      `the first line arrived after ${Math.round(arrivals[0].ms)} ms, not held back until the next item (${stallMs} ms)`,
    );
  } finally {
    await app.close();
  }
});

test("textBatches: a fast stream goes out in batches of about 64 KiB; a failure midway yields the text so far, then throws or ends with failureText", async () => {
  async function* many(count: number, failAt?: number): AsyncGenerator<number> {
    for (let index = 0; index < count; index++) {
      if (index === failAt) throw new Error("broken");
      yield index;
    }
  }
  const format = (index: number) => [`${String(index).padStart(99, "0")}\n`];
  const batches: string[] = [];
  for await (const batch of textBatches(many(2000)[Symbol.asyncIterator](), { format })) batches.push(batch);
  assert.equal(batches.join("").length, 2000 * 100);
  assert.ok(batches.length <= 4, `${batches.length} batches for 200 KB`);

  const before: string[] = [];
  await assert.rejects(async () => {
    for await (const batch of textBatches(many(10, 3)[Symbol.asyncIterator](), { format })) before.push(batch);
  }, /broken/);
  assert.equal(before.join("").length, 3 * 100, "the lines before the failure");

  const ended: string[] = [];
  for await (const batch of textBatches(many(10, 3)[Symbol.asyncIterator](), {
    format,
    failureText: (error) => `failed: ${(error as Error).message}\n`,
  }))
    ended.push(batch);
  assert.ok(ended.join("").endsWith("failed: broken\n"));
  assert.ok(batchAgeMsMax <= 100);
});

test("snaplog log | head: the command stops reading when its reader goes away and exits 0 without a word", async () => {
  const blockSizeBytes = 4096;
  // Random data, so the hexdump of --data does not collapse: megabytes of text, far more than a pipe holds.
  const writes = Array.from({ length: 200 }, (_, index) => ({ offsetBytes: index * blockSizeBytes, data: randomBytes(blockSizeBytes) }));
  const storePath = await storeWithDisk(join(tempDir("cli-stream-head"), "store"), { name: "vm1", sizeBytes: 1 << 20 }, writes);
  const child = spawn(process.execPath, [snaplogMainPath, "--store", storePath, "log", "vm1", "--data"], {
    env: { ...process.env, SNAPLOG_STORE: "" },
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const first = await new Promise<string>((resolve) => child.stdout.once("data", (chunk: Buffer) => resolve(chunk.toString())));
  assert.match(first, /^lsn 1 /);
  child.stdout.destroy();
  assert.equal(await exited, 0, stderr);
  assert.equal(stderr, "");
});
