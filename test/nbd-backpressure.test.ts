/**
 * Goal: a client that sends faster than the volume takes, or that never reads its replies, cannot
 * make the server hold more than about inflightBytesMax per connection.
 * Method: a raw client pipelines 1 MiB WRITEs (2 GiB by default, NBD_BACKPRESSURE_BYTES to change)
 * against a sink volume that accepts 1 MiB per SINK_DELAY_MS, one write at a time; the server's
 * high-water mark of held bytes (counters.bufferedBytesMax) must stay within inflightBytesMax plus
 * one request. A control run with backpressure effectively off (a huge inflightBytesMax) must
 * exceed that bound, proving the measurement would catch a regression. A second test pipelines
 * READs and reads no replies until the server has stopped.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import type { StatusExtent, Volume } from "../src/store/volume.js";
import { MemoryResolver, MemoryVolume } from "./support/memory-volume.js";
import { RawNbdClient, startTestServer } from "./support/nbd-server.js";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const INFLIGHT_BYTES_MAX = 8 * MiB;
const REQUEST_BYTES = MiB;
const SINK_DELAY_MS = 1;
const CMD_READ = 0;
const CMD_WRITE = 1;

/** Takes writes one at a time, slowly, and forgets them. */
class SinkVolume implements Volume {
  readonly name = "sink";
  readonly description = "slow sink";
  readonly sizeBytes = 4 * GiB;
  readonly blockSizeBytes = 4096;
  readonly readOnly = false;
  writtenBytes = 0;
  private tail: Promise<void> = Promise.resolve();

  constructor(private readonly delayMs: number) {}

  write(offsetBytes: number, data: Buffer): Promise<void> {
    this.tail = this.tail
      .then(() => sleep(this.delayMs))
      .then(() => {
        this.writtenBytes += data.length;
      });
    return this.tail;
  }
  async read(offsetBytes: number, lengthBytes: number): Promise<Buffer> {
    return Buffer.alloc(lengthBytes);
  }
  async writeZeroes(): Promise<void> {}
  async trim(): Promise<void> {}
  async flush(): Promise<void> {}
  release(): void {}

  async blockStatus(offsetBytes: number, lengthBytes: number): Promise<StatusExtent[]> {
    return [{ lengthBytes, hole: false, zero: false }];
  }
}

/** Pipelines `totalBytes` of 1 MiB writes, honouring only the client socket's own drain. */
async function pipelineWrites(port: number, totalBytes: number): Promise<void> {
  const client = await RawNbdClient.connect(port);
  await client.open("sink");
  const requestCount = totalBytes / REQUEST_BYTES;
  const replies = (async () => {
    for (let index = 0; index < requestCount; index++) {
      const reply = await client.readSimpleReply();
      assert.equal(reply.errno, 0);
    }
  })();
  const payload = Buffer.alloc(REQUEST_BYTES, 0xab);
  for (let index = 0; index < requestCount; index++) {
    const offsetBytes = (index * REQUEST_BYTES) % (4 * GiB);
    client.write(RawNbdClient.requestHeader(CMD_WRITE, 0, BigInt(index), offsetBytes, REQUEST_BYTES));
    if (!client.write(payload)) await once(client.socket, "drain");
  }
  await replies;
  client.socket.destroy();
}

test("pipelined WRITEs to a slow volume: held bytes stay bounded", { timeout: 120_000 }, async () => {
  const totalBytes = Number(process.env.NBD_BACKPRESSURE_BYTES ?? 2 * GiB);
  const sink = new SinkVolume(SINK_DELAY_MS);
  const server = await startTestServer(new MemoryResolver().add(sink), { inflightBytesMax: INFLIGHT_BYTES_MAX });
  try {
    await pipelineWrites(server.port, totalBytes);
    const counters = server.server.counters;
    assert.equal(sink.writtenBytes, totalBytes);
    assert.equal(counters.writtenBytes, totalBytes);
    assert.ok(counters.backpressurePauseCount > 0, "reading paused at least once");
    assert.ok(
      counters.bufferedBytesMax <= INFLIGHT_BYTES_MAX + 2 * REQUEST_BYTES,
      `held ${counters.bufferedBytesMax} bytes, bound ${INFLIGHT_BYTES_MAX + 2 * REQUEST_BYTES}`,
    );
  } finally {
    await server.close();
  }
});

test("control: without a real inflight limit the same measurement exceeds the bound", { timeout: 60_000 }, async () => {
  const sink = new SinkVolume(20);
  const server = await startTestServer(new MemoryResolver().add(sink), { inflightBytesMax: Number.MAX_SAFE_INTEGER });
  try {
    await pipelineWrites(server.port, 128 * MiB);
    assert.ok(
      server.server.counters.bufferedBytesMax > 4 * (INFLIGHT_BYTES_MAX + 2 * REQUEST_BYTES),
      `held only ${server.server.counters.bufferedBytesMax} bytes: the control does not load the server`,
    );
  } finally {
    await server.close();
  }
});

test("pipelined READs whose replies are not read: the server stops reading requests", { timeout: 60_000 }, async () => {
  const volume = new MemoryVolume({ name: "src", sizeBytes: 64 * MiB });
  const server = await startTestServer(new MemoryResolver().add(volume), { inflightBytesMax: INFLIGHT_BYTES_MAX });
  try {
    const client = await RawNbdClient.connect(server.port);
    await client.open("src");
    client.socket.pause(); // read no replies for now
    const requestCount = 1024; // 1 GiB of reads requested
    for (let index = 0; index < requestCount; index++) {
      client.write(RawNbdClient.requestHeader(CMD_READ, 0, BigInt(index), (index % 64) * MiB, REQUEST_BYTES));
    }
    await sleep(500);
    const counters = server.server.counters;
    assert.ok(counters.backpressurePauseCount > 0, "reading paused");
    assert.ok(counters.readBytes < 256 * MiB, `served ${counters.readBytes} bytes to a client that reads nothing`);
    assert.ok(counters.bufferedBytesMax <= INFLIGHT_BYTES_MAX + 2 * REQUEST_BYTES, `held ${counters.bufferedBytesMax} bytes`);
    client.socket.resume();
    for (let index = 0; index < requestCount; index++) {
      const reply = await client.readSimpleReply(30_000);
      assert.equal(reply.errno, 0);
      await client.read(REQUEST_BYTES, 30_000);
    }
    assert.equal(counters.readBytes, requestCount * REQUEST_BYTES);
    client.socket.destroy();
  } finally {
    await server.close();
  }
});
