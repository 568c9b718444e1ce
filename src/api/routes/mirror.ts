/** /v1/disks/:name/mirror: the mirror leg's state, and a resync streaming its progress (MirrorOperations). */
import type { MirrorOperations } from "../../store/operations/index.js";
import { sendProgressStream, type ProgressTiming } from "../progress-stream.js";
import { MirrorResyncBodySchema, MirrorResyncResultSchema, MirrorStatusSchema } from "../schemas.js";
import { aboutDisk, answers, progressRoute, type TypedApp } from "./route-schema.js";

export function registerMirrorRoutes(app: TypedApp, operations: MirrorOperations, timing: Partial<ProgressTiming>): void {
  app.get(
    "/v1/disks/:name/mirror",
    {
      schema: aboutDisk({
        summary: "Show a disk's mirror leg: path, state (and why degraded), bytes copied",
        response: answers(MirrorStatusSchema),
      }),
    },
    (request) => operations.mirrorStatus(request.params.name),
  );

  app.post(
    "/v1/disks/:name/mirror/resync",
    progressRoute(
      aboutDisk({ summary: "Copy the mirror's dirty regions from the log, streaming progress", body: MirrorResyncBodySchema }),
      "regions",
      MirrorResyncResultSchema,
    ),
    (request, reply) => sendProgressStream(reply, (onProgress) => operations.resyncMirror(request.params.name, onProgress), timing),
  );
}
