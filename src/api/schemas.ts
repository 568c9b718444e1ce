/**
 * JSON schemas of the HTTP API (TypeBox, via the fastify type provider's re-export so the
 * provider and the schemas use the same TypeBox). The type assertions at the bottom fail
 * to compile when a schema drifts from the Operations types in store/operations.ts.
 */
import { Type, type Static } from "@fastify/type-provider-typebox";
import type {
  CreateDiskRequest,
  DiskDetail,
  DiskInfo,
  SnapshotInfo,
  StoreStatus,
} from "../store/operations.js";
import { ErrorCodes } from "../util/errors.js";
import { nameLengthMax } from "../util/parse.js";

export const namePattern = `^(?!\\.{1,2}$)[A-Za-z0-9._-]{1,${nameLengthMax}}$`;

export const NameSchema = Type.String({
  pattern: namePattern,
  description: "[A-Za-z0-9._-]{1,64}, not . or ..",
});

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

export const DiskDetailSchema = Type.Object(
  { ...diskInfoProperties, snapshots: Type.Array(SnapshotInfoSchema) },
  { title: "DiskDetail" },
);

export const StoreStatusSchema = Type.Object(
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
    name: NameSchema,
    sizeBytes: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
    blockSizeBytes: Type.Optional(Type.Integer({ minimum: 512, maximum: 65_536 })),
    fromImage: Type.Optional(Type.String({ minLength: 1, description: "absolute path of a raw image on the server" })),
    historySeconds: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  { additionalProperties: false, title: "CreateDiskRequest" },
);

export const CreateSnapshotBodySchema = Type.Object(
  {
    name: Type.Optional(NameSchema),
    lun: Type.Optional(Type.Integer({ minimum: 1, maximum: 0xffff_ffff })),
  },
  { additionalProperties: false, title: "CreateSnapshotRequest" },
);

export const DiskParamsSchema = Type.Object({ name: NameSchema });

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
assertSame<Same<Static<typeof StoreStatusSchema>, StoreStatus>>();
assertSame<Same<Static<typeof CreateDiskBodySchema>, CreateDiskRequest>>();
