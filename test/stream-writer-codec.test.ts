/**
 * Goal: a stream of incompressible data is not compressed frame after frame for nothing, and
 * compressible data after it is compressed again soon (src/stream/stream-writer.ts codecFor);
 * the output stays a function of the input (resumable archives rely on it) and reads back.
 * Method: a StreamWriter fed random then zero-filled runs in small frames; the frames' codec
 * bytes, the writer's count of compression attempts, and a StreamReader over the result.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { CodecId } from "../src/stream/codec.js";
import { FRAME_HEADER_BYTES } from "../src/stream/stream-format.js";
import { testStreamHeader } from "./support/stream-header.js";
import { StreamReader, StreamWriter } from "../src/stream/index.js";

const BLOCK = 4096;
const BLOCKS_PER_FRAME = 4;
const FRAMES_EACH = 64;

const header = testStreamHeader({ kind: "full", to: { name: "t", id: "t", lsn: 2 * FRAMES_EACH * BLOCKS_PER_FRAME, timeMs: 0 } });

async function write(data: Buffer): Promise<{ bytes: Buffer; tried: number }> {
  const chunks: Buffer[] = [];
  const writer = new StreamWriter(header, { codec: "zstd", frameDataBytes: BLOCKS_PER_FRAME * BLOCK }, async (chunk) => {
    chunks.push(Buffer.from(chunk));
  });
  await writer.start();
  for (let run = 0; run < data.length / BLOCK / BLOCKS_PER_FRAME; run++) {
    const lba = run * BLOCKS_PER_FRAME;
    await writer.addRun({
      lsn: lba + 1,
      timeMs: 0,
      lba,
      blockCount: BLOCKS_PER_FRAME,
      kind: "write",
      data: data.subarray(lba * BLOCK, (lba + BLOCKS_PER_FRAME) * BLOCK),
    });
  }
  await writer.finish();
  return { bytes: Buffer.concat(chunks), tried: writer.framesTried };
}

/** The codec byte of each frame, in order. */
function frameCodecs(stream: Buffer): number[] {
  const codecs: number[] = [];
  let at = 20 + stream.readUInt32LE(16) + 4;
  while (stream.readUInt32LE(at) === 0x52464c53) {
    codecs.push(stream[at + 5]);
    at += FRAME_HEADER_BYTES + stream.readUInt32LE(at + 16);
  }
  return codecs;
}

test("incompressible frames: compression is tried on few of them; compressible ones after are compressed again within a probe's distance; deterministic; reads back", async () => {
  const frameBytes = BLOCKS_PER_FRAME * BLOCK;
  const data = Buffer.concat([randomBytes(FRAMES_EACH * frameBytes), Buffer.alloc(FRAMES_EACH * frameBytes, 7)]);
  const first = await write(data);
  const codecs = frameCodecs(first.bytes);
  assert.equal(codecs.length, 2 * FRAMES_EACH);
  assert.ok(
    codecs.slice(0, FRAMES_EACH).every((codec) => codec === CodecId.none),
    "random data is stored raw",
  );
  const triedOnRandom = first.tried - codecs.slice(FRAMES_EACH).filter((codec) => codec === CodecId.zstd).length;
  assert.ok(triedOnRandom <= 4 + FRAMES_EACH / 16 + 1, `compression tried on ${triedOnRandom} of ${FRAMES_EACH} random frames`);
  const firstCompressed = codecs.indexOf(CodecId.zstd);
  assert.ok(firstCompressed >= FRAMES_EACH && firstCompressed <= FRAMES_EACH + 16 + 4, `compressed again from frame ${firstCompressed}`);
  // Decisions look at frames already written (4 back): a few raw ones may follow the first compressed one.
  assert.ok(
    codecs.slice(firstCompressed + 4).every((codec) => codec === CodecId.zstd),
    "and from there on",
  );

  const again = await write(data);
  assert.ok(again.bytes.equals(first.bytes), "the same input makes the same stream");

  const reader = new StreamReader(
    (async function* () {
      yield first.bytes;
    })(),
  );
  await reader.readHeader();
  const back: Buffer[] = [];
  for await (const item of reader.items()) if (item.type === "runs") for (const run of item.runs) back.push(run.data!);
  await reader.close();
  assert.ok(Buffer.concat(back).equals(data), "the data reads back");
});
