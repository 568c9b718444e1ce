/** The log read back (`snaplog log`): runs of entries and snapshot cuts in time order, streamed. */
import { readLog as readEngineLog } from "../../engine/index.js";
import type { Catalog } from "../catalog.js";
import type { LogEntry, LogRequest } from "../operations/index.js";
import { lsnOfBound } from "../point-spec.js";

export async function* readLog(catalog: Catalog, request: LogRequest): AsyncIterable<LogEntry> {
  const disk = catalog.disk(request.disk);
  const engine = disk.engine;
  let lsnFirst = 0;
  let lsnLast = engine.lsnLast;
  if (request.snapshot !== undefined) {
    ({ lsnFirst, lsnLast } = engine.snapshotPartition(request.snapshot));
  }
  if (request.since !== undefined) lsnFirst = Math.max(lsnFirst, lsnOfBound(engine, request.since, "--since", "first"));
  if (request.until !== undefined) lsnLast = Math.min(lsnLast, lsnOfBound(engine, request.until, "--until", "last"));
  const blockSizeBytes = disk.meta.blockSizeBytes;
  for await (const row of readEngineLog(engine, { lsnFirst, lsnLast, withData: request.data === true })) {
    const entry: LogEntry = {
      kind: row.kind,
      lsnFirst: row.lsnFirst,
      lsnLast: row.lsnLast,
      time: new Date(row.timeMs).toISOString(),
      block: row.lba,
      blockCount: row.blockCount,
      offsetBytes: row.lba * blockSizeBytes,
      lengthBytes: row.blockCount * blockSizeBytes,
    };
    if (row.snapshot !== undefined) entry.snapshot = row.snapshot;
    if (row.data !== undefined) entry.data = row.data.toString("base64");
    yield entry;
  }
}
