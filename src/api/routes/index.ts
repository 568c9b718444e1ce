/**
 * Every route of the API, a file per concern, each given only the operations it needs. A new
 * capability adds its file here, and one line below.
 */
import type { Registry } from "prom-client";
import type { Operations, ReplicaOperations } from "../../store/operations/index.js";
import type { ServedEndpoints } from "../appliance-status.js";
import type { ProgressTiming } from "../progress-stream.js";
import type { VaultArea } from "../../store/vault-area.js";
import type { MetricSeries } from "../dashboard/metric-series.js";
import { registerArchiveRoutes } from "./archive.js";
import { registerDashboardRoutes } from "./dashboard.js";
import { registerDiskRoutes } from "./disks.js";
import { registerEventRoutes } from "./events.js";
import { registerHistoryRoutes } from "./history.js";
import { registerMetricsRoutes } from "./metrics.js";
import { registerMirrorRoutes } from "./mirror.js";
import { registerPolicyRoutes } from "./policy.js";
import type { TypedApp } from "./route-schema.js";
import { registerScrubRoutes } from "./scrub.js";
import { registerSnapshotRoutes } from "./snapshots.js";
import { registerStatusRoutes } from "./status.js";
import { registerVaultObjectRoutes } from "./vault-objects.js";
import { registerVaultRoutes } from "./vaults.js";
import { registerReplicationRoutes } from "./replication.js";

export interface RouteContext {
  /** The store: every operation, and the receiving side of replication (other appliances call it). */
  operations: Operations & ReplicaOperations;
  metrics: Registry;
  served: ServedEndpoints;
  progress: Partial<ProgressTiming>;
  /** This appliance as a vault for others (/v1/vault/*); absent, those routes are not served. */
  vaultArea?: VaultArea;
  /** The dashboard's chart samples; absent, its series answers empty. */
  series?: MetricSeries;
  /** This listener needs the bearer token (TCP): the dashboard asks for it first. */
  tokenRequired: boolean;
}

export function registerRoutes(app: TypedApp, context: RouteContext): void {
  registerDiskRoutes(app, context.operations);
  registerSnapshotRoutes(app, context.operations);
  registerPolicyRoutes(app, context.operations);
  registerHistoryRoutes(app, context.operations, context.progress);
  registerArchiveRoutes(app, context.operations);
  registerVaultRoutes(app, context.operations, context.progress);
  registerReplicationRoutes(app, context.operations);
  registerScrubRoutes(app, context.operations, context.progress);
  registerMirrorRoutes(app, context.operations, context.progress);
  registerStatusRoutes(app, context.operations, context.served);
  registerEventRoutes(app, context.operations);
  registerMetricsRoutes(app, context.metrics);
  registerDashboardRoutes(app, context.series, context.tokenRequired);
  if (context.vaultArea !== undefined) registerVaultObjectRoutes(app, context.vaultArea);
}
