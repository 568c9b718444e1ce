/** /v1/disks/:name/snapshots: list, create (cut the log), delete (SnapshotOperations). */
import { Type } from "@fastify/type-provider-typebox";
import type { SnapshotOperations } from "../../store/operations/index.js";
import { CreateSnapshotBodySchema, DeleteSnapshotResultSchema, SnapshotInfoSchema, SnapshotParamsSchema } from "../schemas.js";
import { aboutDisk, answers, emptyBodyAsObject, type TypedApp } from "./route-schema.js";

export function registerSnapshotRoutes(app: TypedApp, operations: SnapshotOperations): void {
  app.get(
    "/v1/disks/:name/snapshots",
    { schema: aboutDisk({ summary: "List a disk's snapshots", response: answers(Type.Array(SnapshotInfoSchema)) }) },
    (request) => operations.listSnapshots(request.params.name),
  );

  app.post(
    "/v1/disks/:name/snapshots",
    {
      schema: aboutDisk({
        summary: "Create a snapshot (cut the log)",
        body: CreateSnapshotBodySchema,
        response: answers(SnapshotInfoSchema, 201),
      }),
      // An empty POST is a snapshot with defaults, so curl -X POST works without a body.
      preValidation: emptyBodyAsObject,
    },
    async (request, reply) => {
      const snapshot = await operations.createSnapshot({ disk: request.params.name, ...request.body });
      return reply.code(201).send(snapshot);
    },
  );

  app.delete(
    "/v1/disks/:name/snapshots/:snapshot",
    {
      schema: {
        summary: "Delete a snapshot: releases its LUN and merges its partition into the next",
        params: SnapshotParamsSchema,
        response: answers(DeleteSnapshotResultSchema),
      },
    },
    (request) => operations.deleteSnapshot(request.params.name, request.params.snapshot),
  );
}
