/** /v1/scrub: the integrity check, streaming progress (ScrubOperations). */
import type { ScrubOperations } from "../../store/operations/index.js";
import { sendProgressStream, type ProgressTiming } from "../progress-stream.js";
import { ScrubBodySchema, ScrubResultSchema } from "../schemas.js";
import { progressRoute, type TypedApp } from "./route-schema.js";

export function registerScrubRoutes(app: TypedApp, operations: ScrubOperations, timing: Partial<ProgressTiming>): void {
  // Scrub is about the store, not one disk: the disk is in the body, and none means all.
  app.post(
    "/v1/scrub",
    progressRoute(
      {
        summary:
          "Check every live log entry's CRC32C (of one disk, or all), streaming progress; damage is reported in the result, not as an error",
        body: ScrubBodySchema,
      },
      "index pages",
      ScrubResultSchema,
    ),
    (request, reply) => sendProgressStream(reply, (onProgress) => operations.scrub(request.body, onProgress), timing),
  );
}
