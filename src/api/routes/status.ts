/** /v1/status: the store's status with what the appliance serves (appliance-status.ts). */
import type { StatusOperations } from "../../store/operations/index.js";
import { applianceStatus, type ServedEndpoints } from "../appliance-status.js";
import { ApplianceStatusSchema } from "../schemas.js";
import { answers, type TypedApp } from "./route-schema.js";

export function registerStatusRoutes(app: TypedApp, operations: StatusOperations, served: ServedEndpoints): void {
  app.get("/v1/status", { schema: { summary: "Store status", response: answers(ApplianceStatusSchema) } }, async () =>
    applianceStatus(await operations.status(), served),
  );
}
