/**
 * Vaults and archives (VaultOperations, SPEC §5.3): the vaults a store knows, the chains in one,
 * archive (a disk's snapshot to a vault) and restore (a disk from a vault), both streaming
 * their progress then their result as NDJSON.
 */
import { Type } from "@fastify/type-provider-typebox";
import type { VaultOperations } from "../../store/operations/index.js";
import { sendProgressStream, type ProgressTiming } from "../progress-stream.js";
import { aboutDisk, answers, progressRoute, type TypedApp } from "./route-schema.js";

const VaultInfoSchema = Type.Object(
  {
    name: Type.String(),
    url: Type.String({ description: "the URL without secrets" }),
    kind: Type.Union([Type.Literal("directory"), Type.Literal("s3"), Type.Literal("appliance")]),
    credentials: Type.Boolean(),
    token: Type.Boolean(),
    addedAt: Type.String(),
  },
  { title: "VaultInfo" },
);

const VaultAddBodySchema = Type.Object(
  {
    name: Type.String(),
    url: Type.String({ description: "file:///path, s3://bucket/prefix?endpoint=URL&region=R or snaplog://HOST:PORT" }),
    credentialsFile: Type.Optional(
      Type.String({ description: "s3: an AWS shared-credentials file on the server's machine, copied into the store" }),
    ),
    token: Type.Optional(Type.String({ description: "snaplog://: the peer's API token" })),
  },
  { additionalProperties: false },
);

const VaultChainSchema = Type.Object(
  {
    storeId: Type.String(),
    diskId: Type.String(),
    disk: Type.String(),
    chainId: Type.String(),
    items: Type.Array(
      Type.Object({
        index: Type.Integer(),
        snapshot: Type.String(),
        lsn: Type.Integer(),
        time: Type.String(),
        kind: Type.Union([Type.Literal("full"), Type.Literal("incremental")]),
        compacted: Type.Boolean(),
        bytes: Type.Integer(),
        complete: Type.Boolean(),
        snapshots: Type.Array(Type.String()),
      }),
    ),
  },
  { title: "VaultChain" },
);

const ArchiveBodySchema = Type.Object(
  {
    vault: Type.String(),
    snapshot: Type.Optional(Type.String({ description: "the snapshot shipped (default: a new one, archive-<time>)" })),
    full: Type.Optional(Type.Boolean({ description: "start a new chain with a full stream" })),
    compact: Type.Optional(Type.Boolean({ description: "newest version per block per partition (default true)" })),
    partBytes: Type.Optional(Type.Integer({ minimum: 1024 * 1024, maximum: 64 * 1024 * 1024, description: "bytes per vault object" })),
  },
  { additionalProperties: false },
);

const ArchiveResultSchema = Type.Object(
  {
    disk: Type.String(),
    vault: Type.String(),
    snapshot: Type.String(),
    chainId: Type.String(),
    index: Type.Integer(),
    kind: Type.Union([Type.Literal("full"), Type.Literal("incremental")]),
    from: Type.Union([Type.String(), Type.Null()]),
    compacted: Type.Boolean(),
    parts: Type.Integer(),
    bytes: Type.Integer(),
    bytesSent: Type.Integer(),
    partsResumed: Type.Integer(),
  },
  { title: "ArchiveResult" },
);

const RestoreBodySchema = Type.Object(
  {
    source: Type.String({ description: "DISK or STOREID/DISK, with an optional @SNAPSHOT" }),
    as: Type.Optional(Type.String({ description: "the new disk's name (default: the archived disk's)" })),
    at: Type.Optional(Type.String({ description: "a time inside the chain's non-compacted streams" })),
  },
  { additionalProperties: false },
);

const RestoreResultSchema = Type.Object(
  {
    disk: Type.String(),
    storeId: Type.String(),
    chainId: Type.String(),
    streams: Type.Integer(),
    snapshots: Type.Array(Type.String()),
    bytes: Type.Integer(),
  },
  { title: "VaultRestoreResult" },
);

const VaultParamsSchema = Type.Object({ vault: Type.String() });

export function registerVaultRoutes(app: TypedApp, operations: VaultOperations, timing: Partial<ProgressTiming>): void {
  app.get("/v1/vaults", { schema: { summary: "The vaults this store knows", response: answers(Type.Array(VaultInfoSchema)) } }, () =>
    operations.listVaults(),
  );
  app.post(
    "/v1/vaults",
    { schema: { summary: "Add a vault (checked: it must answer)", body: VaultAddBodySchema, response: answers(VaultInfoSchema, 201) } },
    async (request, reply) => reply.code(201).send(await operations.addVault(request.body)),
  );
  app.delete(
    "/v1/vaults/:vault",
    { schema: { summary: "Forget a vault (its archives stay in it)", params: VaultParamsSchema } },
    async (request, reply) => {
      await operations.removeVault(request.params.vault);
      return reply.code(204).send();
    },
  );
  app.get(
    "/v1/vaults/:vault/chains",
    {
      schema: {
        summary: "The chains of archives in a vault",
        params: VaultParamsSchema,
        querystring: Type.Object({ disk: Type.Optional(Type.String()) }, { additionalProperties: false }),
        response: answers(Type.Array(VaultChainSchema)),
      },
    },
    (request) => operations.listVaultChains(request.params.vault, request.query.disk),
  );
  app.post(
    "/v1/disks/:name/archive",
    progressRoute(
      aboutDisk({ summary: "Archive a snapshot of the disk to a vault, streaming progress", body: ArchiveBodySchema }),
      "steps",
      ArchiveResultSchema,
    ),
    (request, reply) =>
      sendProgressStream(reply, (onProgress) => operations.archive({ disk: request.params.name, ...request.body }, onProgress), timing),
  );
  app.post(
    "/v1/vaults/:vault/restore",
    {
      ...progressRoute(
        { summary: "Rebuild a disk from a vault, verified first, streaming progress", body: RestoreBodySchema },
        "bytes",
        RestoreResultSchema,
      ),
      schema: {
        ...progressRoute(
          { summary: "Rebuild a disk from a vault, verified first, streaming progress", body: RestoreBodySchema },
          "bytes",
          RestoreResultSchema,
        ).schema,
        params: VaultParamsSchema,
      },
    },
    (request, reply) =>
      sendProgressStream(
        reply,
        (onProgress) => operations.restoreFromVault({ vault: request.params.vault, ...request.body }, onProgress),
        timing,
      ),
  );
}
