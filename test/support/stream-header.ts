import type { StreamHeader } from "../../src/stream/stream-format.js";

/** A stream header for tests of the stream layer: a 1 GiB disk of 4 KiB blocks, time-ordered, not compacted; the rest given. */
export function testStreamHeader(fields: Pick<StreamHeader, "kind" | "to"> & Partial<StreamHeader>): StreamHeader {
  return {
    streamId: "test",
    createdMs: 0,
    source: { storeId: "s", diskId: "d", diskName: "d" },
    blockSizeBytes: 4096,
    sizeBytes: 1024 * 1024 * 1024,
    historySeconds: 0,
    compacted: false,
    order: "time",
    ...fields,
  };
}
