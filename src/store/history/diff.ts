/** The blocks written between two volumes (`snaplog diff DISK FROM TO`), in block order, streamed. */
import type { Catalog } from "../catalog.js";
import type { DiffRequest, DiffRun } from "../operations/index.js";
import { lsnOfPoint } from "../point-spec.js";

export async function* diff(catalog: Catalog, request: DiffRequest): AsyncIterable<DiffRun> {
  const disk = catalog.disk(request.disk);
  const lsnFrom = lsnOfPoint(disk.engine, request.from, "FROM");
  const lsnTo = lsnOfPoint(disk.engine, request.to, "TO");
  const blockSizeBytes = disk.meta.blockSizeBytes;
  for await (const run of disk.engine.diffRuns(lsnFrom, lsnTo)) {
    yield {
      block: run.lbaFirst,
      blockCount: run.blockCount,
      offsetBytes: run.lbaFirst * blockSizeBytes,
      lengthBytes: run.blockCount * blockSizeBytes,
    };
  }
}
