/**
 * Remote copy (ReplicaOperations and ReplicationOperations, SPEC §5.4). The receiving side (/v1/replica/...): a
 * sender's hello, batches (the stream as the body, unbuffered), resync, snapshot deletes — on
 * any listener, with the bearer token on TCP (`serve --api` or `--replication`). The sending
 * side: relations set up, stopped and listed, and `disk promote` on a replica.
 */
import { StreamedBody } from "../request-body.js";
import { Type } from "@fastify/type-provider-typebox";
import type { ReplicaOperations, ReplicationOperations } from "../../store/operations/index.js";
import { RelationInfoSchema } from "../schemas.js";
import { aboutDisk, answers, type TypedApp } from "./route-schema.js";

const PointSchema = Type.Object({ name: Type.String(), id: Type.String(), lsn: Type.Integer(), timeMs: Type.Integer() });
const SourceSchema = Type.Object({ storeId: Type.String(), diskId: Type.String(), diskName: Type.String() });
const ReplicaStateSchema = Type.Object(
  {
    state: Type.Union([Type.Literal("empty"), Type.Literal("replica"), Type.Literal("diverged")]),
    ackedLsn: Type.Union([Type.Integer(), Type.Null()]),
    snapshots: Type.Array(PointSchema),
  },
  { title: "ReplicaState" },
);
const ReplicaAckSchema = Type.Object(
  {
    disk: Type.String(),
    ackedLsn: Type.Integer(),
    ackedTimeMs: Type.Integer(),
    snapshots: Type.Array(Type.String()),
    blockCount: Type.Integer(),
  },
  { title: "ReplicaAck" },
);
const ReplicateBodySchema = Type.Object(
  {
    to: Type.String({ description: "snaplog://HOST:PORT/DISK" }),
    token: Type.String({ description: "the receiver's API token (its STORE/api.token)" }),
    mode: Type.Union([Type.Literal("continuous"), Type.Literal("compacted")]),
    intervalMs: Type.Optional(Type.Integer({ minimum: 100, description: "compacted: ms between shipments (default 60000)" })),
    maxLoadPercent: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 100,
        description: "continuous: the most of the source server's event-loop time shipping may take while hosts write (default 7)",
      }),
    ),
  },
  { additionalProperties: false },
);

export function registerReplicationRoutes(app: TypedApp, operations: ReplicationOperations & ReplicaOperations): void {
  app.post(
    "/v1/replica/:name/hello",
    {
      schema: aboutDisk({
        summary: "A sender's contact: what this replica holds",
        body: Type.Object({ disk: Type.String(), source: SourceSchema, snapshots: Type.Array(PointSchema) }),
        response: answers(ReplicaStateSchema),
      }),
    },
    (request) => operations.replicaHello({ ...request.body, disk: request.params.name }),
  );
  app.post(
    "/v1/replica/:name/resync",
    {
      schema: aboutDisk({
        summary: "Go back to the newest snapshot both sides hold and become the replica from there",
        body: Type.Object({ source: SourceSchema, commonSnapshotId: Type.String(), sourceLsn: Type.Integer() }),
        response: answers(ReplicaStateSchema),
      }),
    },
    (request) => operations.replicaResync(request.params.name, request.body.source, request.body.commonSnapshotId, request.body.sourceLsn),
  );
  app.post(
    "/v1/replica/:name/delete-snapshots",
    {
      schema: aboutDisk({
        summary: "Snapshots deleted at the source, by id",
        body: Type.Object({ sourceDiskId: Type.String(), ids: Type.Array(Type.String()) }),
        response: answers(Type.Array(Type.String())),
      }),
    },
    (request) => operations.replicaDeleteSnapshots(request.params.name, request.body.sourceDiskId, request.body.ids),
  );
  app.register(async (scope) => {
    scope.addContentTypeParser("application/octet-stream", (_request, payload, done) => done(null, payload));
    scope.post(
      "/v1/replica/:name/batch",
      {
        bodyLimit: Number.MAX_SAFE_INTEGER,
        schema: aboutDisk({
          summary: "A batch: a stream from the acknowledged LSN (or a full one), applied whole",
          consumes: ["application/octet-stream"],
          response: answers(ReplicaAckSchema),
        }),
      },
      // The encapsulated scope loses the type provider's inference: the schema above checked the name.
      async (request) => {
        const streamed = new StreamedBody(request.body);
        try {
          return await operations.replicaBatch((request.params as { name: string }).name, streamed.chunks());
        } finally {
          streamed.drain();
        }
      },
    );
  });
  app.post(
    "/v1/disks/:name/promote",
    {
      schema: aboutDisk({
        summary: "Failover: the replica becomes read-write; its relation ends",
        response: answers(Type.Object({ disk: Type.String(), promotedAt: Type.String() })),
      }),
    },
    (request) => operations.promoteDisk(request.params.name),
  );
  app.post(
    "/v1/disks/:name/replicate",
    {
      schema: aboutDisk({
        summary: "Set up a relation (the receiver is contacted now)",
        body: ReplicateBodySchema,
        response: answers(RelationInfoSchema),
      }),
    },
    (request) => operations.replicate({ disk: request.params.name, ...request.body }),
  );
  app.delete("/v1/disks/:name/replicate", { schema: aboutDisk({ summary: "Stop replicating the disk" }) }, async (request, reply) => {
    await operations.stopReplication(request.params.name);
    return reply.code(204).send();
  });
  app.get(
    "/v1/replication",
    {
      schema: {
        summary: "Replication relations with state, acknowledged LSN, lag and bytes",
        response: answers(Type.Array(RelationInfoSchema)),
      },
    },
    () => operations.listRelations(),
  );
}
