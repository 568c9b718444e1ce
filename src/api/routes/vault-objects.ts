/**
 * /v1/vault/*: this appliance as a vault for another one (snaplog://HOST:PORT). Objects are
 * raw bytes (application/octet-stream, up to VAULT_OBJECT_BODY_LIMIT_BYTES), stored under
 * STORE/vault/ all-or-nothing (store/vault-area.ts). The client is src/vault/appliance-vault.ts.
 */
import { Type, type TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { FastifyInstance } from "fastify";
import { VAULT_AREA_LIST_LIMIT_MAX, type VaultArea } from "../../store/vault-area.js";
import { invalidArgument } from "../../util/errors.js";
import { answers, type TypedApp } from "./route-schema.js";

/** The largest object a PUT takes: parts are ≤ 64 MiB, with room for framing. */
export const VAULT_OBJECT_BODY_LIMIT_BYTES = 80 * 1024 * 1024;
/** The header of a HEAD answer with the object's size (src/vault/appliance-vault.ts reads it). */
const sizeHeader = "x-snaplog-size-bytes";
const octetStream = "application/octet-stream";

const ObjectParamsSchema = Type.Object({ "*": Type.String({ description: "the object's key, e.g. stores/S/disks/D/part-000001.slar" }) });
const VaultObjectInfoSchema = Type.Object({ key: Type.String(), sizeBytes: Type.Integer({ minimum: 0 }) }, { title: "VaultObjectInfo" });
const ListQuerySchema = Type.Object(
  {
    prefix: Type.Optional(Type.String({ description: "only keys that start with this" })),
    after: Type.Optional(Type.String({ description: "only keys after this one (the last key of the previous page)" })),
    limit: Type.Optional(
      Type.String({ pattern: "^[1-9][0-9]{0,3}$", description: `objects per answer, at most ${VAULT_AREA_LIST_LIMIT_MAX}` }),
    ),
  },
  { additionalProperties: false },
);
const ListAnswerSchema = Type.Object(
  {
    objects: Type.Array(VaultObjectInfoSchema),
    truncated: Type.Boolean({ description: "more follow: ask again with after = the last key" }),
  },
  { title: "VaultObjectList" },
);
const DeleteBodySchema = Type.Object({ keys: Type.Array(Type.String(), { maxItems: 10_000 }) }, { additionalProperties: false });
const SweepBodySchema = Type.Object({ olderThanMs: Type.Integer({ minimum: 0 }) }, { additionalProperties: false });
const SweepAnswerSchema = Type.Object({ removed: Type.Integer({ minimum: 0 }) }, { title: "VaultSweepResult" });
const binaryAnswer = {
  description: "the object's bytes",
  content: { [octetStream]: { schema: Type.Unsafe<Buffer>({ type: "string", format: "binary" }) } },
};

export function registerVaultObjectRoutes(app: TypedApp, area: VaultArea): void {
  // Encapsulated: the raw-body parser and the large body limit apply to these routes only.
  void app.register(async (scope: FastifyInstance) => {
    scope.addContentTypeParser(octetStream, { parseAs: "buffer" }, (_request, body, done) => done(null, body));
    registerObjectRoutes(scope.withTypeProvider<TypeBoxTypeProvider>(), area);
  });
}

function registerObjectRoutes(app: TypedApp, area: VaultArea): void {
  app.put(
    "/v1/vault/objects/*",
    {
      bodyLimit: VAULT_OBJECT_BODY_LIMIT_BYTES,
      schema: {
        summary: "Store an object (raw body, application/octet-stream), all-or-nothing; replaces an existing one",
        consumes: [octetStream],
        params: ObjectParamsSchema,
        response: answers(Type.Null(), 204),
      },
    },
    async (request, reply) => {
      if (!Buffer.isBuffer(request.body)) throw invalidArgument(`the body of a vault object must be ${octetStream}`);
      await area.put(request.params["*"], request.body);
      return reply.code(204).send(null);
    },
  );

  app.get(
    "/v1/vault/objects/*",
    {
      exposeHeadRoute: false,
      schema: { summary: "An object's bytes", params: ObjectParamsSchema, response: answers(binaryAnswer) },
    },
    async (request, reply) => reply.type(octetStream).send(await area.get(request.params["*"])),
  );

  app.head(
    "/v1/vault/objects/*",
    { schema: { summary: `Whether an object exists (404 if not); its size in the ${sizeHeader} header`, params: ObjectParamsSchema } },
    async (request, reply) => {
      const info = await area.head(request.params["*"]);
      if (info === undefined) return reply.code(404).send();
      return reply.header(sizeHeader, String(info.sizeBytes)).code(200).send();
    },
  );

  app.get(
    "/v1/vault/objects",
    {
      schema: {
        summary: "List objects by key prefix, in key order, a page at a time",
        querystring: ListQuerySchema,
        response: answers(ListAnswerSchema),
      },
    },
    (request) => {
      const limit = Math.min(Number(request.query.limit ?? VAULT_AREA_LIST_LIMIT_MAX), VAULT_AREA_LIST_LIMIT_MAX);
      return area.listPage(request.query.prefix ?? "", request.query.after, limit);
    },
  );

  app.post(
    "/v1/vault/delete",
    { schema: { summary: "Delete objects (absent keys are not an error)", body: DeleteBodySchema, response: answers(Type.Null(), 204) } },
    async (request, reply) => {
      await area.delete(request.body.keys);
      return reply.code(204).send(null);
    },
  );

  app.post(
    "/v1/vault/sweep",
    {
      schema: {
        summary: "Remove temp files of interrupted puts older than olderThanMs",
        body: SweepBodySchema,
        response: answers(SweepAnswerSchema),
      },
    },
    async (request) => ({ removed: await area.sweepIncomplete(request.body.olderThanMs) }),
  );
}
