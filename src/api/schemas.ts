/**
 * JSON schemas of the HTTP API (TypeBox, via the fastify type provider's re-export so the
 * provider and the schemas use the same TypeBox). The type assertions at the bottom fail
 * to compile when a schema drifts from the Operations types in store/operations/.
 */
import { Type, type Static } from "@fastify/type-provider-typebox";
import type {
  CompactRequest,
  CompactResult,
  CreateDiskRequest,
  CreateSnapshotRequest,
  DeleteSnapshotResult,
  DiffRequest,
  DiffRun,
  DiskDetail,
  DiskInfo,
  DiskPolicy,
  DiskSpace,
  HistoryWindowInfo,
  LogEntry,
  LogRequest,
  PolicyUpdate,
  RestoreRequest,
  RestoreResult,
  ScrubRequest,
  ScrubResult,
  SnapshotInfo,
} from "../store/operations/index.js";
import type { ApplianceStatus } from "./appliance-status.js";
import { BLOCK_SIZE_BYTES_MAX, BLOCK_SIZE_BYTES_MIN } from "../store/block-size.js";
import { LUN_MAX, LUN_MIN } from "../store/luns.js";
import { NAME_PATTERN_SOURCE, NAME_RULE, type NameKind } from "../store/names.js";
import { ErrorCodes } from "../util/errors.js";

/**
 * Names take the store's one rule (store/names.ts) as their pattern; the title says which kind
 * of name a field holds, so a name that fails gets the store's own message (nameKindOfSchema).
 */
const nameKindByTitle: ReadonlyMap<unknown, NameKind> = new Map([
  ["DiskName", "disk"],
  ["SnapshotName", "snapshot"],
]);

export const DiskNameSchema = Type.String({ title: "DiskName", pattern: NAME_PATTERN_SOURCE, description: NAME_RULE });
export const SnapshotNameSchema = Type.String({ title: "SnapshotName", pattern: NAME_PATTERN_SOURCE, description: NAME_RULE });

/** The kind of name a schema holds (one of the two above, or a copy such as Type.Optional's); undefined for others. */
export function nameKindOfSchema(schema: unknown): NameKind | undefined {
  const { title, pattern } = (schema ?? {}) as { title?: unknown; pattern?: unknown };
  return pattern === NAME_PATTERN_SOURCE ? nameKindByTitle.get(title) : undefined;
}

const Lun = Type.Integer({ minimum: LUN_MIN, maximum: LUN_MAX });

const Count = Type.Integer({ minimum: 0 });

export const SnapshotInfoSchema = Type.Object(
  {
    disk: Type.String(),
    name: Type.String(),
    lun: Count,
    lsn: Count,
    createdAt: Type.String({ description: "ISO 8601" }),
  },
  { title: "SnapshotInfo" },
);

const diskInfoProperties = {
  name: Type.String(),
  sizeBytes: Count,
  blockSizeBytes: Count,
  lun: Count,
  historySeconds: Count,
  createdAt: Type.String({ description: "ISO 8601" }),
  hasBaseline: Type.Boolean(),
  entryCount: Count,
  logBytes: Count,
  segmentBytes: Count,
  journalBytes: Count,
  lsnLast: Count,
  snapshotCount: Count,
};

export const DiskInfoSchema = Type.Object(diskInfoProperties, { title: "DiskInfo" });

export const HistoryWindowInfoSchema = Type.Object(
  {
    lsnFirst: Count,
    timeFirst: Type.Union([Type.String({ description: "ISO 8601" }), Type.Null()], {
      description: "null when the window reaches before every write",
    }),
    lsnLast: Count,
  },
  { title: "HistoryWindowInfo" },
);

export const DiskSpaceSchema = Type.Object(
  {
    baselineBytes: Count,
    logLiveBytes: Count,
    logDeadBytes: Type.Integer({ minimum: 0, description: "what compaction would free now" }),
    logFreeBytes: Type.Integer({ minimum: 0, description: "free slots inside existing segment files" }),
    segmentBytes: Type.Integer({ minimum: 0, description: "bytes of the segment files as the medium reports them" }),
    liveEntries: Count,
    deadEntries: Count,
    window: HistoryWindowInfoSchema,
  },
  { title: "DiskSpace" },
);

export const DiskPolicySchema = Type.Object(
  {
    historySeconds: Count,
    autoCompact: Type.Boolean(),
    compactOnDelete: Type.Boolean(),
  },
  { title: "DiskPolicy" },
);

export const DiskDetailSchema = Type.Object(
  { ...diskInfoProperties, snapshots: Type.Array(SnapshotInfoSchema), space: DiskSpaceSchema, policy: DiskPolicySchema },
  { title: "DiskDetail" },
);

/** The status answer (api/appliance-status.ts), titled StoreStatus as the OpenAPI document always named it. */
export const ApplianceStatusSchema = Type.Object(
  {
    path: Type.String(),
    version: Type.String(),
    pid: Count,
    mode: Type.Union([Type.Literal("server"), Type.Literal("direct")]),
    uptimeSeconds: Type.Number({ minimum: 0 }),
    diskCount: Count,
    snapshotCount: Count,
    usedBytes: Count,
    freeBytes: Count,
    checksumErrors: Count,
    nbd: Type.Array(Type.String()),
    disks: Type.Array(DiskInfoSchema),
  },
  { title: "StoreStatus" },
);

export const CreateDiskBodySchema = Type.Object(
  {
    name: DiskNameSchema,
    sizeBytes: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
    blockSizeBytes: Type.Optional(Type.Integer({ minimum: BLOCK_SIZE_BYTES_MIN, maximum: BLOCK_SIZE_BYTES_MAX })),
    fromImage: Type.Optional(Type.String({ minLength: 1, description: "absolute path of a raw image on the server" })),
    historySeconds: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  { additionalProperties: false, title: "CreateDiskRequest" },
);

export const CreateSnapshotBodySchema = Type.Object(
  {
    name: Type.Optional(SnapshotNameSchema),
    lun: Type.Optional(Lun),
  },
  { additionalProperties: false, title: "CreateSnapshotRequest" },
);

export const DiskParamsSchema = Type.Object({ name: DiskNameSchema });

export const SnapshotParamsSchema = Type.Object({ name: DiskNameSchema, snapshot: SnapshotNameSchema });

export const DeleteSnapshotResultSchema = Type.Object(
  {
    ...SnapshotInfoSchema.properties,
    entriesFreed: Count,
    bytesFreed: Count,
  },
  { title: "DeleteSnapshotResult" },
);

export const PolicyUpdateBodySchema = Type.Object(
  {
    historySeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
    autoCompact: Type.Optional(Type.Boolean()),
    compactOnDelete: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false, minProperties: 1, title: "PolicyUpdate" },
);

export const CompactBodySchema = Type.Object(
  {
    snapshot: Type.Optional(SnapshotNameSchema),
    intoBaseline: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false, title: "CompactRequest" },
);

export const CompactResultSchema = Type.Object(
  {
    disk: Type.String(),
    mode: Type.Union([Type.Literal("in-place"), Type.Literal("into-baseline")]),
    entriesFreed: Count,
    bytesFreed: Count,
    bytesMoved: Count,
    entriesScanned: Count,
    bytesScanned: Count,
    segmentsReleased: Count,
    lsnFold: Count,
    scanMs: Type.Number({ minimum: 0 }),
    durationMs: Type.Number({ minimum: 0 }),
    corruptBlocks: Type.Array(Count, {
      description: "into the baseline: blocks whose data failed its checksum, left in the log (ascending)",
    }),
  },
  { title: "CompactResult" },
);

/** A point in time, or a volume: lsn:N, an ISO 8601 time, current, baseline or a snapshot name. */
const PointSpecSchema = Type.String({
  minLength: 1,
  maxLength: 128,
  description: "lsn:N, an ISO 8601 time, current, baseline or a snapshot name",
});

export const RestoreBodySchema = Type.Object(
  {
    at: PointSpecSchema,
    to: Type.Optional(Type.String({ minLength: 1, description: "absolute path on the server; neither it nor <to>.partial may exist" })),
    asSnapshot: Type.Optional(SnapshotNameSchema),
    rollback: Type.Optional(Type.Boolean()),
    name: Type.Optional(SnapshotNameSchema),
    lun: Type.Optional(Lun),
  },
  {
    additionalProperties: false,
    title: "RestoreRequest",
    description: "exactly one of to, asSnapshot, rollback; lun only with asSnapshot or rollback; name only with rollback",
  },
);

export const RestoreResultSchema = Type.Object(
  {
    disk: Type.String(),
    mode: Type.Union([Type.Literal("file"), Type.Literal("snapshot"), Type.Literal("rollback")]),
    lsn: Count,
    time: Type.Union([Type.String(), Type.Null()]),
    file: Type.Optional(Type.Object({ path: Type.String(), sizeBytes: Count, bytesWritten: Count })),
    snapshot: Type.Optional(SnapshotInfoSchema),
    before: Type.Optional(SnapshotInfoSchema),
    blocksRestored: Type.Optional(Count),
  },
  { title: "RestoreResult" },
);

/** An empty body (or none) scrubs every disk. */
export const ScrubBodySchema = Type.Object(
  { disk: Type.Optional(DiskNameSchema) },
  { additionalProperties: false, title: "ScrubRequest", description: "without disk: every disk of the store" },
);

const ScrubDamageSchema = Type.Object(
  {
    block: Count,
    lsn: Count,
    offsetBytes: Type.Integer({ minimum: 0, description: "block × block size: where the block lies in the disk" }),
    file: Type.String({ description: "segment file holding the entry's data, relative to the store directory" }),
    fileOffsetBytes: Type.Integer({ minimum: 0, description: "where the data lies in that file" }),
    reason: Type.String({ description: "checksum mismatch, or unreadable: <the medium's error>" }),
  },
  { title: "ScrubDamage" },
);

const ScrubDiskResultSchema = Type.Object(
  {
    disk: Type.String(),
    entriesChecked: Count,
    bytesChecked: Count,
    corrupt: Type.Array(ScrubDamageSchema),
    baselineUnknownBlocks: Type.Array(Count, {
      description: "baseline blocks a fold could not write (damaged data): the baseline answers EIO there",
    }),
    offlineReason: Type.Optional(Type.String({ description: "the disk failed to open and was not checked" })),
    ok: Type.Boolean(),
  },
  { title: "ScrubDiskResult" },
);

export const ScrubResultSchema = Type.Object(
  {
    disks: Type.Array(ScrubDiskResultSchema),
    ok: Type.Boolean({ description: "every disk checked and sound; damage found is ok: false, not an error" }),
    durationMs: Type.Number({ minimum: 0 }),
  },
  { title: "ScrubResult" },
);

/**
 * Query strings arrive as text and the API does not coerce types, so `data` is the literal
 * "true" or "false" here and becomes a boolean in the route.
 */
export const LogQuerySchema = Type.Object(
  {
    since: Type.Optional(PointSpecSchema),
    until: Type.Optional(PointSpecSchema),
    snapshot: Type.Optional(SnapshotNameSchema),
    data: Type.Optional(Type.Union([Type.Literal("true"), Type.Literal("false")])),
  },
  { additionalProperties: false },
);

export const LogEntrySchema = Type.Object(
  {
    kind: Type.Union([Type.Literal("write"), Type.Literal("zero"), Type.Literal("trim"), Type.Literal("snapshot")]),
    lsnFirst: Count,
    lsnLast: Count,
    time: Type.String({ description: "ISO 8601" }),
    block: Count,
    blockCount: Count,
    offsetBytes: Count,
    lengthBytes: Count,
    snapshot: Type.Optional(Type.Object({ name: Type.String(), lun: Count })),
    data: Type.Optional(Type.String({ description: "base64 of the entries' bytes" })),
  },
  { title: "LogEntry" },
);

export const DiffQuerySchema = Type.Object({ from: PointSpecSchema, to: PointSpecSchema }, { additionalProperties: false });

export const DiffRunSchema = Type.Object({ block: Count, blockCount: Count, offsetBytes: Count, lengthBytes: Count }, { title: "DiffRun" });

export const ProgressSchema = Type.Object({ done: Type.Number({ minimum: 0 }), total: Type.Number({ minimum: 0 }) });

export const ErrorSchema = Type.Object(
  {
    error: Type.Object({
      code: Type.Union(Object.values(ErrorCodes).map((code) => Type.Literal(code))),
      message: Type.String(),
      hint: Type.Optional(Type.String()),
    }),
  },
  { title: "Error" },
);

/** Compile-time check that two types are the same, both ways. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
function assertSame<T extends true>(): T | undefined {
  return undefined;
}
assertSame<Same<Static<typeof SnapshotInfoSchema>, SnapshotInfo>>();
assertSame<Same<Static<typeof DiskInfoSchema>, DiskInfo>>();
assertSame<Same<Static<typeof DiskDetailSchema>, DiskDetail>>();
assertSame<Same<Static<typeof ApplianceStatusSchema>, ApplianceStatus>>();
assertSame<Same<Static<typeof CreateDiskBodySchema>, CreateDiskRequest>>();
assertSame<Same<Static<typeof CreateSnapshotBodySchema>, Omit<CreateSnapshotRequest, "disk">>>();
assertSame<Same<Static<typeof HistoryWindowInfoSchema>, HistoryWindowInfo>>();
assertSame<Same<Static<typeof DiskSpaceSchema>, DiskSpace>>();
assertSame<Same<Static<typeof DiskPolicySchema>, DiskPolicy>>();
assertSame<Same<Static<typeof DeleteSnapshotResultSchema>, DeleteSnapshotResult>>();
assertSame<Same<Static<typeof PolicyUpdateBodySchema>, Omit<PolicyUpdate, "disk">>>();
assertSame<Same<Static<typeof CompactBodySchema>, Omit<CompactRequest, "disk">>>();
assertSame<Same<Static<typeof CompactResultSchema>, CompactResult>>();
assertSame<Same<Static<typeof RestoreBodySchema>, Omit<RestoreRequest, "disk">>>();
assertSame<Same<Static<typeof RestoreResultSchema>, RestoreResult>>();
assertSame<Same<Static<typeof ScrubBodySchema>, ScrubRequest>>();
assertSame<Same<Static<typeof ScrubResultSchema>, ScrubResult>>();
assertSame<Same<Omit<Static<typeof LogQuerySchema>, "data">, Omit<LogRequest, "disk" | "data">>>();
assertSame<Same<Static<typeof LogEntrySchema>, LogEntry>>();
assertSame<Same<Static<typeof DiffQuerySchema>, Omit<DiffRequest, "disk">>>();
assertSame<Same<Static<typeof DiffRunSchema>, DiffRun>>();
