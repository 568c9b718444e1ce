/** /v1/disks/:name/policy: show, and change some of it (PolicyOperations). */
import type { PolicyOperations } from "../../store/operations/index.js";
import { DiskPolicySchema, PolicyUpdateBodySchema, PruneBodySchema, PruneResultSchema } from "../schemas.js";
import { aboutDisk, answers, type TypedApp } from "./route-schema.js";

export function registerPolicyRoutes(app: TypedApp, operations: PolicyOperations): void {
  app.get(
    "/v1/disks/:name/policy",
    { schema: aboutDisk({ summary: "Show a disk's policy", response: answers(DiskPolicySchema) }) },
    (request) => operations.showPolicy(request.params.name),
  );

  app.patch(
    "/v1/disks/:name/policy",
    {
      schema: aboutDisk({
        summary: "Change some of a disk's policy; the answer is the whole policy",
        body: PolicyUpdateBodySchema,
        response: answers(DiskPolicySchema),
      }),
    },
    (request) => operations.setPolicy({ disk: request.params.name, ...request.body }),
  );

  app.post(
    "/v1/disks/:name/policy/prune",
    {
      schema: aboutDisk({
        summary: "Apply retention now (or, with dryRun, say what it would delete)",
        body: PruneBodySchema,
        response: answers(PruneResultSchema),
      }),
    },
    (request) => operations.prunePolicy({ disk: request.params.name, ...request.body }),
  );
}
