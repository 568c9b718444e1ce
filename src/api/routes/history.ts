/**
 * A disk's history (HistoryOperations): compact and restore stream their progress, then their
 * result; the log and the diff stream their items. All NDJSON.
 */
import { Type } from "@fastify/type-provider-typebox";
import type { HistoryOperations } from "../../store/operations/index.js";
import { sendItemStream } from "../item-stream.js";
import { sendProgressStream, type ProgressTiming } from "../progress-stream.js";
import {
  CompactBodySchema,
  CompactResultSchema,
  DiffQuerySchema,
  DiffRunSchema,
  ErrorSchema,
  LogEntrySchema,
  LogQuerySchema,
  RestoreBodySchema,
  RestoreResultSchema,
} from "../schemas.js";
import { aboutDisk, answers, ndjsonResponse, progressRoute, type TypedApp } from "./route-schema.js";

export function registerHistoryRoutes(app: TypedApp, operations: HistoryOperations, timing: Partial<ProgressTiming>): void {
  app.post(
    "/v1/disks/:name/compact",
    progressRoute(
      aboutDisk({ summary: "Compact now (in place, or into the baseline), streaming progress", body: CompactBodySchema }),
      "steps",
      CompactResultSchema,
    ),
    (request, reply) =>
      sendProgressStream(reply, (onProgress) => operations.compact({ disk: request.params.name, ...request.body }, onProgress), timing),
  );

  app.post(
    "/v1/disks/:name/restore",
    progressRoute(
      aboutDisk({
        summary: "Restore a point in time to a file, as a snapshot, or by rolling back, streaming progress",
        body: RestoreBodySchema,
      }),
      "bytes",
      RestoreResultSchema,
    ),
    (request, reply) =>
      sendProgressStream(reply, (onProgress) => operations.restore({ disk: request.params.name, ...request.body }, onProgress), timing),
  );

  app.get(
    "/v1/disks/:name/log",
    {
      schema: aboutDisk({
        summary: "The log in time order (runs of entries and snapshot cuts), streamed",
        querystring: LogQuerySchema,
        response: answers(
          ndjsonResponse(
            "one LogEntry per line; a final {error} line if the stream fails midway",
            Type.Union([LogEntrySchema, ErrorSchema]),
          ),
        ),
      }),
    },
    (request, reply) => {
      const { data, ...bounds } = request.query;
      return sendItemStream(reply, operations.readLog({ disk: request.params.name, ...bounds, data: data === "true" }));
    },
  );

  app.get(
    "/v1/disks/:name/diff",
    {
      schema: aboutDisk({
        summary: "The blocks that differ between two volumes, in block order, streamed",
        querystring: DiffQuerySchema,
        response: answers(
          ndjsonResponse("one DiffRun per line; a final {error} line if the stream fails midway", Type.Union([DiffRunSchema, ErrorSchema])),
        ),
      }),
    },
    (request, reply) => sendItemStream(reply, operations.diff({ disk: request.params.name, ...request.query })),
  );
}
