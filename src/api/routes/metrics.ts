/** /metrics: the registry in the Prometheus text format. */
import type { Registry } from "prom-client";
import type { TypedApp } from "./route-schema.js";

export function registerMetricsRoutes(app: TypedApp, metrics: Registry): void {
  app.get("/metrics", { schema: { summary: "Prometheus metrics (text format)" } }, async (_request, reply) => {
    const text = await metrics.metrics();
    return reply.header("content-type", metrics.contentType).send(text);
  });
}
