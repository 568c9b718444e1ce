/**
 * JSON schemas of the HTTP API (TypeBox, via the fastify type provider's re-export so the
 * provider and the schemas use the same TypeBox). The type assertions at the bottom fail
 * to compile when a schema drifts from the Operations types in store/operations/.
 */
import { Type, type Static } from "@fastify/type-provider-typebox";
import type { TOptional, TProperties } from "@fastify/type-provider-typebox";
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
  MirrorResyncResult,
  MirrorStatus,
  PolicyUpdate,
  PruneRequest,
  PruneResult,
  RestoreRequest,
  RestoreResult,
  ScrubRequest,
  ScrubResult,
  SnapshotInfo,
  StoreEvent,
} from "../store/operations/index.js";
import type { ApplianceStatus } from "./appliance-status.js";
import { BLOCK_SIZE_BYTES_MAX, BLOCK_SIZE_BYTES_MIN } from "../store/block-size.js";
import { LUN_MAX, LUN_MIN } from "../store/luns.js";
import { LUN_POLICIES, POLICY_EVENTS, SPACE_ACTIONS } from "../store/operations/index.js";
import {
  HOOK_ACTION_BYTES_MAX,
  HOOKS_MAX,
  KEEP_COUNT_MAX,
  SPACE_HIGH_PERCENT_MAX,
  SPACE_HIGH_PERCENT_MIN,
} from "../store/policy/policy-settings.js";
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
    lun: Type.Union([Count, Type.Null()], {
      description: "the LUN it holds now; null when a newer snapshot took over the LUN it was created with (constant LUN policy)",
    }),
    lsn: Count,
    createdAt: Type.String({ description: "ISO 8601" }),
    scheduled: Type.Boolean({ description: "made by the disk's schedule (auto-YYYYMMDDTHHMMSSZ): only these are retention's" }),
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

// Spelled out (a mapped array would widen the literals); assertSame at the bottom and the
// check below keep them equal to the store's lists.
const PolicyEventSchema = Type.Union(
  [
    Type.Literal("snapshot-created"),
    Type.Literal("snapshot-deleted"),
    Type.Literal("space-high"),
    Type.Literal("replication-lag"),
    Type.Literal("mirror-degraded"),
    Type.Literal("scrub-damage"),
  ],
  { description: "an event an action can be attached to" },
);
const SpaceActionSchema = Type.Union([Type.Literal("compact"), Type.Literal("delete-oldest"), Type.Literal("archive-then-delete")], {
  description: "what the space policy does",
});
const LunPolicySchema = Type.Union([Type.Literal("sequential"), Type.Literal("pool"), Type.Literal("constant"), Type.Literal("explicit")], {
  description: "how new snapshots get their LUN (--lun-policy)",
});
for (const [schema, values] of [
  [PolicyEventSchema, POLICY_EVENTS],
  [SpaceActionSchema, SPACE_ACTIONS],
  [LunPolicySchema, LUN_POLICIES],
] as const) {
  if (JSON.stringify(schema.anyOf.map((literal) => literal.const)) !== JSON.stringify(values))
    throw new Error("api schemas: a policy list differs from the store's");
}
const KeepCount = (what: string) => Type.Integer({ minimum: 0, maximum: KEEP_COUNT_MAX, description: what });
const EventHookSchema = Type.Object(
  {
    event: PolicyEventSchema,
    action: Type.String({
      minLength: 1,
      maxLength: HOOK_ACTION_BYTES_MAX,
      description: "compact, archive:VAULT, exec:COMMAND or webhook:URL",
    }),
  },
  { additionalProperties: false, title: "EventHook" },
);

/** Every option of a policy, described once: the shown policy has them all, an update any of them. */
const policySettingsProperties = {
  historySeconds: Type.Integer({
    minimum: 0,
    maximum: Number.MAX_SAFE_INTEGER,
    description: "every-write history window, seconds (--history)",
  }),
  historyMaxBytes: Type.Union([Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }), Type.Null()], {
    description: "cap on the log bytes held only for the window; null: none (--history-max)",
  }),
  autoCompact: Type.Boolean({ description: "compact in the background when idle or short of space (--auto-compact)" }),
  compactOnDelete: Type.Boolean({ description: "free a deleted snapshot's partition at once (--compact-on-delete)" }),
  mergeOldestIntoBaseline: Type.Boolean({
    description: "deleting the oldest snapshot folds it into the baseline (--merge-oldest-into-baseline)",
  }),
  snapshotEverySeconds: Type.Union([Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }), Type.Null()], {
    description: "a scheduled snapshot every N seconds (slots at multiples of N since the epoch, UTC); null: off (--snapshot-every)",
  }),
  snapshotCron: Type.Union([Type.String({ minLength: 1, maxLength: 256 }), Type.Null()], {
    description: "a scheduled snapshot at each time of this cron expression (5 or 6 fields) in `timezone`; null: off (--snapshot-cron)",
  }),
  timezone: Type.String({
    minLength: 1,
    maxLength: 64,
    description: "IANA zone of the cron schedule and of retention's buckets (--timezone)",
  }),
  keepLast: KeepCount("keep the newest N scheduled snapshots (--keep-last)"),
  keepHourly: KeepCount("keep the newest scheduled snapshot of each of the N most recent hours that have one (--keep-hourly)"),
  keepDaily: KeepCount("likewise per day (--keep-daily)"),
  keepWeekly: KeepCount("likewise per ISO week (--keep-weekly)"),
  keepMonthly: KeepCount("likewise per month (--keep-monthly)"),
  spaceHighPercent: Type.Union([Type.Integer({ minimum: SPACE_HIGH_PERCENT_MIN, maximum: SPACE_HIGH_PERCENT_MAX }), Type.Null()], {
    description: "use of the store's file system (df) past which spaceAction runs; null: off (--space-high)",
  }),
  spaceAction: Type.Union([SpaceActionSchema, Type.Null()], { description: "what runs past spaceHighPercent (--space-action)" }),
  spaceVault: Type.Union([Type.String({ minLength: 1, maxLength: 128 }), Type.Null()], {
    description: "the vault of archive-then-delete (--space-vault)",
  }),
  replicationLagHighSeconds: Type.Union([Type.Number({ minimum: 0 }), Type.Null()], {
    description: "replication lag in seconds past which replication-lag is recorded (--replication-lag-high)",
  }),
  hooks: Type.Array(EventHookSchema, { maxItems: HOOKS_MAX, description: "actions attached to events (--on / --off)" }),
  lunPolicy: LunPolicySchema,
  lun: Type.Union([Lun, Type.Null()], { description: "the LUN every new snapshot takes (constant policy)" }),
  mirror: Type.Union([Type.String({ minLength: 1, maxLength: 4096 }), Type.Null()], {
    description:
      "the mirror leg: an image file or block device, absolute path, kept as a full copy of the current volume; null: none (--mirror)",
  }),
};

export const DiskPolicySchema = Type.Object(
  {
    ...policySettingsProperties,
    nextScheduledRun: Type.Union([Type.String(), Type.Null()], { description: "when the next scheduled snapshot is due (ISO 8601)" }),
    retentionWouldDelete: Type.Array(Type.String(), { description: "scheduled snapshots retention would delete now, oldest first" }),
  },
  { title: "DiskPolicy" },
);

export const DiskDetailSchema = Type.Object(
  { ...diskInfoProperties, snapshots: Type.Array(SnapshotInfoSchema), space: DiskSpaceSchema, policy: DiskPolicySchema },
  { title: "DiskDetail" },
);

/** The status answer (api/appliance-status.ts), titled StoreStatus as the OpenAPI document always named it. */
const MirrorStateSchema = Type.Union([Type.Literal("syncing"), Type.Literal("in-sync"), Type.Literal("degraded")]);

export const MirrorStatusSchema = Type.Object(
  {
    disk: Type.String(),
    path: Type.String({ description: "the mirror file or block device" }),
    state: MirrorStateSchema,
    reason: Type.Optional(Type.String({ description: "why the leg is degraded" })),
    bytesCopied: Type.Integer({ minimum: 0, description: "bytes written to the mirror by the last or running sync" }),
    blocksRepaired: Type.Integer({
      minimum: 0,
      description: "log blocks that failed their checksum, served from the mirror and written again",
    }),
    dirtyBytes: Type.Integer({ minimum: 0, description: "bytes in regions of the write-intent bitmap that are set" }),
    regionBytes: Type.Integer({ minimum: 1, description: "the bitmap's region size" }),
  },
  { title: "MirrorStatus" },
);

/** A replication relation as the sender sees it (SPEC §5.4). */
export const RelationInfoSchema = Type.Object(
  {
    disk: Type.String(),
    to: Type.String(),
    mode: Type.Union([Type.Literal("continuous"), Type.Literal("compacted")]),
    intervalMs: Type.Integer(),
    maxLoadPercent: Type.Integer({
      description: "continuous: the most of the source server's time shipping takes while hosts write (100: it never yields)",
    }),
    state: Type.Union([Type.Literal("connected"), Type.Literal("retrying"), Type.Literal("ended"), Type.Literal("starting")]),
    reason: Type.Union([Type.String(), Type.Null()]),
    ackedLsn: Type.Union([Type.Integer(), Type.Null()]),
    lastAckAt: Type.Union([Type.String(), Type.Null()], {
      description: "when the replica last acknowledged (ISO 8601); null: not since this server started",
    }),
    lagSeconds: Type.Number({ description: "age of the oldest write the replica has not acknowledged; 0 when caught up" }),
    lagBytes: Type.Integer(),
    bytesShipped: Type.Integer({ description: "on the wire, after compression, since this server started" }),
    bytesWritten: Type.Integer({ description: "written by hosts on the source since the relation was set up" }),
    createdAt: Type.String(),
  },
  { title: "Relation" },
);

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
    replication: Type.Array(RelationInfoSchema),
    mirrors: Type.Array(MirrorStatusSchema),
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
    lun: Type.Optional(
      Type.Integer({
        minimum: LUN_MIN,
        maximum: LUN_MAX,
        description: "the snapshot's LUN: required by the explicit LUN policy, only N under constant N",
      }),
    ),
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

const { hooks: _hooks, ...updatableProperties } = policySettingsProperties;
/** The same properties, each optional. */
function optionalAll<T extends TProperties>(properties: T): { [K in keyof T]: TOptional<T[K]> } {
  return Object.fromEntries(Object.entries(properties).map(([key, schema]) => [key, Type.Optional(schema)])) as {
    [K in keyof T]: TOptional<T[K]>;
  };
}

export const PolicyUpdateBodySchema = Type.Object(
  {
    ...optionalAll(updatableProperties),
    hooksAdd: Type.Optional(Type.Array(EventHookSchema, { maxItems: HOOKS_MAX, description: "attach actions (--on EVENT=ACTION)" })),
    hooksRemove: Type.Optional(
      Type.Array(
        Type.Object(
          { event: PolicyEventSchema, action: Type.Optional(Type.String({ minLength: 1, maxLength: HOOK_ACTION_BYTES_MAX })) },
          { additionalProperties: false },
        ),
        { maxItems: HOOKS_MAX, description: "detach an action, or every action of an event (--off EVENT[=ACTION])" },
      ),
    ),
  },
  { additionalProperties: false, minProperties: 1, title: "PolicyUpdate" },
);

export const PruneBodySchema = Type.Object(
  { dryRun: Type.Optional(Type.Boolean({ description: "say what would be deleted, delete nothing" })) },
  { additionalProperties: false, title: "PruneRequest" },
);

export const PruneResultSchema = Type.Object(
  { disk: Type.String(), dryRun: Type.Boolean(), deleted: Type.Array(Type.String()) },
  { title: "PruneResult" },
);

export const StoreEventSchema = Type.Object(
  {
    seq: Count,
    time: Type.String(),
    type: Type.String(),
    disk: Type.Optional(Type.String()),
    snapshot: Type.Optional(Type.String()),
    lun: Type.Optional(Count),
    lsn: Type.Optional(Count),
    reason: Type.Optional(Type.String()),
    message: Type.String(),
    details: Type.Optional(Type.Record(Type.String(), Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()]))),
  },
  { title: "StoreEvent" },
);

/** `?follow=1`: a stream that goes on with new items as they come (the event log, the dashboard's samples). */
export const FollowFlagSchema = Type.Union([Type.Literal("1"), Type.Literal("true"), Type.Literal("0"), Type.Literal("false")], {
  description: "1: go on streaming new items as they come",
});

export function wantsFollow(flag: Static<typeof FollowFlagSchema> | undefined): boolean {
  return flag === "1" || flag === "true";
}

export const EventsQuerySchema = Type.Object(
  {
    disk: Type.Optional(DiskNameSchema),
    since: Type.Optional(Type.String({ description: "only events at or after this time (ISO 8601)" })),
    follow: Type.Optional(FollowFlagSchema),
  },
  { additionalProperties: false },
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
    repaired: Type.Array(ScrubDamageSchema, {
      description: "damaged entries of the current volume written again into the log from the disk's in-sync mirror",
    }),
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
assertSame<Same<Static<typeof PruneBodySchema>, Omit<PruneRequest, "disk">>>();
assertSame<Same<Static<typeof PruneResultSchema>, PruneResult>>();
assertSame<Same<Static<typeof StoreEventSchema>, StoreEvent>>();

// ---- mirror (SPEC §6) --------------------------------------------------------------------------

export const MirrorResyncResultSchema = Type.Object(
  {
    disk: Type.String(),
    path: Type.String(),
    state: MirrorStateSchema,
    bytesCopied: Type.Integer({ minimum: 0 }),
    regionsChecked: Type.Integer({ minimum: 0, description: "dirty regions read from both legs (written only where they differed)" }),
  },
  { title: "MirrorResyncResult" },
);

export const MirrorResyncBodySchema = Type.Object({}, { additionalProperties: false });

assertSame<Same<Static<typeof MirrorStatusSchema>, MirrorStatus>>();
assertSame<Same<Static<typeof MirrorResyncResultSchema>, MirrorResyncResult>>();
