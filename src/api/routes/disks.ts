/** /v1/disks: list, create, show, delete (DiskOperations). */
import { Type } from "@fastify/type-provider-typebox";
import type { DiskOperations } from "../../store/operations/index.js";
import { CreateDiskBodySchema, DiskDetailSchema, DiskInfoSchema } from "../schemas.js";
import { aboutDisk, answers, type TypedApp } from "./route-schema.js";

export function registerDiskRoutes(app: TypedApp, operations: DiskOperations): void {
  app.get("/v1/disks", { schema: { summary: "List disks", response: answers(Type.Array(DiskInfoSchema)) } }, () => operations.listDisks());

  app.post(
    "/v1/disks",
    { schema: { summary: "Create a disk", body: CreateDiskBodySchema, response: answers(DiskInfoSchema, 201) } },
    async (request, reply) => {
      const disk = await operations.createDisk(request.body);
      return reply.code(201).send(disk);
    },
  );

  app.get(
    "/v1/disks/:name",
    { schema: aboutDisk({ summary: "Show a disk and its snapshots", response: answers(DiskDetailSchema) }) },
    (request) => operations.showDisk(request.params.name),
  );

  app.delete(
    "/v1/disks/:name",
    { schema: aboutDisk({ summary: "Delete a disk", response: answers(Type.Null(), 204) }) },
    async (request, reply) => {
      await operations.deleteDisk(request.params.name);
      return reply.code(204).send(null);
    },
  );
}
