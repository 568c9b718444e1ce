/**
 * Archive streams over HTTP (ArchiveOperations): GET .../export answers the stream itself
 * (application/octet-stream; an error before the first byte is a JSON error answer, one after
 * it cuts the stream short, which the stream's trailer makes any reader refuse); POST
 * .../import takes the stream as the request body, unbuffered, and answers the result.
 */
import { StreamedBody } from "../request-body.js";
import { once } from "node:events";
import { PassThrough } from "node:stream";
import { Type } from "@fastify/type-provider-typebox";
import { CODEC_NAMES, type CodecName } from "../../stream/index.js";
import type { ArchiveOperations, ExportResult } from "../../store/operations/index.js";
import { aboutDisk, answers, type TypedApp } from "./route-schema.js";

const ExportQuerySchema = Type.Object(
  {
    to: Type.Optional(
      Type.String({ description: "the volume: a snapshot, lsn:N or a time (default: the current volume, pinned at the start)" }),
    ),
    from: Type.Optional(Type.String({ description: "a snapshot the receiver has: the stream is incremental from it" })),
    compact: Type.Optional(
      Type.Union([Type.Literal("true"), Type.Literal("false")], { description: "only the newest version of each block per partition" }),
    ),
    order: Type.Optional(Type.Union([Type.Literal("time"), Type.Literal("block")])),
    codec: Type.Optional(Type.Union(CODEC_NAMES.map((name) => Type.Literal(name)))),
  },
  { additionalProperties: false },
);

const ImportQuerySchema = Type.Object(
  {
    force: Type.Optional(
      Type.Boolean({ description: "apply onto a disk written since the stream's base; what is replaced is kept as a snapshot" }),
    ),
  },
  { additionalProperties: false },
);

const ImportResultSchema = Type.Object({
  disk: Type.String(),
  created: Type.Boolean(),
  streamId: Type.String(),
  kind: Type.Union([Type.Literal("full"), Type.Literal("incremental")]),
  compacted: Type.Boolean(),
  from: Type.Union([Type.String(), Type.Null()]),
  to: Type.Union([Type.String(), Type.Null()]),
  snapshots: Type.Array(Type.String()),
  blockCount: Type.Integer(),
  bytes: Type.Integer(),
  beforeImport: Type.Union([Type.String(), Type.Null()]),
});

export function registerArchiveRoutes(app: TypedApp, operations: ArchiveOperations): void {
  app.get(
    "/v1/disks/:name/export",
    {
      schema: aboutDisk({
        summary: "An archive stream of a volume of the disk (docs/stream-format.md)",
        querystring: ExportQuerySchema,
        produces: ["application/octet-stream"],
      }),
    },
    async (request, reply) => {
      const body = new PassThrough({ highWaterMark: 4 * 1024 * 1024 });
      let started: (() => void) | undefined;
      const firstByte = new Promise<void>((resolve) => (started = resolve));
      const exporting: Promise<ExportResult> = operations.exportStream(
        {
          disk: request.params.name,
          ...request.query,
          compact: request.query.compact === "true",
          codec: request.query.codec as CodecName | undefined,
        },
        async (chunk) => {
          started?.();
          if (!body.write(chunk)) await once(body, "drain");
        },
      );
      // Errors before the first byte are answered as errors; after it, the stream is cut.
      await Promise.race([firstByte, exporting]);
      exporting.then(
        () => body.end(),
        (error: unknown) => body.destroy(error instanceof Error ? error : new Error(String(error))),
      );
      reply.header("content-type", "application/octet-stream");
      return reply.send(body);
    },
  );

  app.register(async (scope) => {
    // The stream goes to the import as it arrives: no buffering, no body limit (the import spools it to disk).
    scope.addContentTypeParser("application/octet-stream", (_request, payload, done) => done(null, payload));
    scope.post(
      "/v1/disks/:name/import",
      {
        bodyLimit: Number.MAX_SAFE_INTEGER,
        schema: aboutDisk({
          summary: "Apply an archive stream (the request body) to the disk: creates it from a full stream, or extends it",
          querystring: ImportQuerySchema,
          consumes: ["application/octet-stream"],
          response: answers(ImportResultSchema),
        }),
      },
      async (request) => {
        // The encapsulated scope loses the type provider's inference: the schema above checked these.
        const params = request.params as { name: string };
        const query = request.query as { force?: "true" | "false" };
        const streamed = new StreamedBody(request.body);
        try {
          return await operations.importStream({ disk: params.name, force: query.force === "true" }, streamed.chunks());
        } finally {
          streamed.drain();
        }
      },
    );
  });
}
