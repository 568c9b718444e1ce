/**
 * Goal: the answer types the dashboard reads (src/dashboard/types.ts: the browser code cannot
 * import the server's modules) stay true to what the API sends. Method: the compiler — every
 * answer type of the store and the API must be assignable to the page's type of the same answer,
 * so a field renamed, removed or retyped on the server breaks `npm test`'s build. The test
 * below only records that the checks compiled.
 */
import { test } from "node:test";
import type * as Page from "../src/dashboard/types.js";
import type { ApplianceStatus } from "../src/api/appliance-status.js";
import type { SeriesSample } from "../src/api/dashboard/metric-series.js";
import type {
  DiskDetail,
  DiskInfo,
  DiskPolicy,
  MirrorStatus,
  RelationInfo,
  SnapshotInfo,
  StoreEvent,
  VaultChainInfo,
  VaultInfo,
} from "../src/store/operations/index.js";

/** Compiles only when an answer of type Sent can be read as Read. */
type Readable<Sent extends Read, Read> = [Sent, Read];

export type Checked = [
  Readable<DiskInfo, Page.DiskInfo>,
  Readable<DiskDetail, Page.DiskDetail>,
  Readable<SnapshotInfo, Page.SnapshotInfo>,
  Readable<DiskPolicy, Page.DiskPolicy>,
  Readable<StoreEvent, Page.StoreEvent>,
  Readable<RelationInfo, Page.Relation>,
  Readable<MirrorStatus, Page.MirrorStatus>,
  Readable<ApplianceStatus, Page.ApplianceStatus>,
  Readable<VaultInfo, Page.VaultInfo>,
  Readable<VaultChainInfo, Page.VaultChain>,
  Readable<SeriesSample, Page.SeriesSample>,
];

test("the dashboard's answer types are the API's (checked when this file compiles)", () => {});
