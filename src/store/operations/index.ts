/**
 * The control-plane operations of a store, as plain JSON-able data, one small interface per
 * concern (each file holds its interface and the types it speaks). The Store implements them
 * in-process; the API server exposes them over HTTP (a route file per concern, api/routes/);
 * the CLI calls either the running server (ApiClient) or an opened Store, through `Operations`.
 * Errors are SnaplogError (mapped to HTTP status in api/, to exit codes in cli/).
 *
 * A new capability adds its own interface here (and its own file), and `Operations` extends it.
 */
import type { ArchiveOperations } from "./archive-operations.js";
import type { DiskOperations } from "./disk-operations.js";
import type { EventOperations } from "./event-operations.js";
import type { HistoryOperations } from "./history-operations.js";
import type { PolicyOperations } from "./policy-operations.js";
import type { ScrubOperations } from "./scrub-operations.js";
import type { SnapshotOperations } from "./snapshot-operations.js";
import type { StatusOperations } from "./status-operations.js";
import type { VaultOperations } from "./vault-operations.js";
import type { ReplicationOperations } from "./replication-operations.js";
import type { MirrorOperations } from "./mirror-operations.js";

export type * from "./archive-operations.js";
export type * from "./disk-operations.js";
export type * from "./event-operations.js";
export type * from "./history-operations.js";
export type * from "./policy-operations.js";
export type * from "./progress.js";
export type * from "./scrub-operations.js";
export type * from "./snapshot-operations.js";
export type * from "./status-operations.js";
export type * from "./vault-operations.js";
export type * from "./replication-operations.js";
export type * from "./mirror-operations.js";
export { checkCompactRequest, checkRestoreRequest } from "./history-operations.js";
export { LUN_POLICIES, POLICY_EVENTS, SPACE_ACTIONS } from "./policy-operations.js";

export interface Operations
  extends
    DiskOperations,
    ArchiveOperations,
    VaultOperations,
    ReplicationOperations,
    SnapshotOperations,
    PolicyOperations,
    HistoryOperations,
    ScrubOperations,
    StatusOperations,
    EventOperations,
    MirrorOperations {}
