/**
 * The HTTP API (SPEC §3.3): the Operations as JSON under /v1, the OpenAPI document at
 * /v1/openapi.json, Prometheus metrics at /metrics. Always on the store's unix socket
 * (mode 0600: file permissions are the access control); on TCP only when asked, and then
 * every request needs `Authorization: Bearer <token>` from the store's token file.
 *
 * Both listeners serve the same routes from two fastify instances built by buildApiApp;
 * only the TCP one has the token check. Errors are mapped once, by the table in status.ts.
 */
import { timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import Fastify, { LogController, type RawServerDefault, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifySchemaValidationError } from "fastify";
import swagger from "@fastify/swagger";
import { Type, type TSchema, type TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import { Counter, Registry, collectDefaultMetrics } from "prom-client";
import type { Operations } from "../store/operations.js";
import { apiSocketPath, apiTokenPath } from "../store/paths.js";
import { ErrorCodes, SnaplogError } from "../util/errors.js";
import { formatHostPort, nameLengthMax, type HostPort } from "../util/parse.js";
import {
  CompactBodySchema,
  CompactResultSchema,
  CreateDiskBodySchema,
  CreateSnapshotBodySchema,
  DeleteSnapshotResultSchema,
  DiffQuerySchema,
  DiffRunSchema,
  DiskDetailSchema,
  DiskInfoSchema,
  DiskParamsSchema,
  DiskPolicySchema,
  ErrorSchema,
  LogEntrySchema,
  LogQuerySchema,
  namePattern,
  PolicyUpdateBodySchema,
  ProgressSchema,
  RestoreBodySchema,
  RestoreResultSchema,
  ScrubBodySchema,
  ScrubResultSchema,
  SnapshotInfoSchema,
  SnapshotParamsSchema,
  StoreStatusSchema,
} from "./schemas.js";
import { sendItemStream } from "./item-stream.js";
import { ndjsonContentType } from "./ndjson.js";
import { sendProgressStream } from "./progress-stream.js";
import { claimSocketPath, ensureToken, removeSocket, restrictToOwner } from "./socket.js";
import { errorBody, httpStatusByCode, oneLine } from "./status.js";

export const apiVersion = "1";
const requestCounterName = "snaplog_api_requests_total";

export interface ApiAppOptions {
  operations: Operations;
  metrics: Registry;
  /** When set, every request must carry this bearer token (TCP listeners). */
  token?: string;
  logger?: FastifyBaseLogger;
}

export interface ApiServerOptions {
  operations: Operations;
  storePath: string;
  /** Default apiSocketPath(storePath). */
  socketPath?: string;
  /** Default apiTokenPath(storePath). */
  tokenPath?: string;
  tcp?: HostPort;
  /** Registry served on /metrics; default metrics are added to a new one when absent. */
  metrics?: Registry;
  logger?: FastifyBaseLogger;
}

export interface ApiServer {
  socketPath: string;
  /** The bound TCP address, when listening on TCP (port 0 resolved). */
  tcp?: HostPort;
  /** One line each, e.g. "api: unix:/store/api.sock", "api: http://127.0.0.1:8080". */
  endpoints: string[];
  close(): Promise<void>;
}

export function createMetricsRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

const errorResponses = { "4xx": ErrorSchema, "5xx": ErrorSchema } as const;

/** One fastify instance with every route; tests use it with inject(). */
export async function buildApiApp(options: ApiAppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    ...(options.logger === undefined ? { logger: false } : { loggerInstance: options.logger }),
    logController: new LogController({ disableRequestLogging: true }),
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
    schemaErrorFormatter: formatValidationError,
  }).withTypeProvider<TypeBoxTypeProvider>();

  installErrorHandlers(app);
  if (options.token !== undefined) installTokenCheck(app, options.token);
  installRequestCounter(app, options.metrics);

  await app.register(swagger, {
    openapi: {
      openapi: "3.0.3",
      info: {
        title: "snaplog",
        version: apiVersion,
        description:
          "Incremental block-storage appliance: disks, snapshots, policies, compaction, restore, log and diff, scrub, status. " +
          "Long answers are NDJSON (application/x-ndjson, one JSON document per line); a stream that fails after its first line ends with an {\"error\": ...} line.",
      },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: options.token === undefined ? [] : [{ bearer: [] }],
    },
  });

  registerOperationRoutes(app, options.operations);

  app.get("/v1/openapi.json", { schema: { hide: true } }, () => app.swagger({ yaml: false }));

  app.get("/metrics", { schema: { summary: "Prometheus metrics (text format)" } }, async (_request, reply) => {
    const text = await options.metrics.metrics();
    return reply.header("content-type", options.metrics.contentType).send(text);
  });

  await app.ready();
  return app;
}

type TypedApp = FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, FastifyBaseLogger, TypeBoxTypeProvider>;

/** The /v1 routes: one per Operations method. */
function registerOperationRoutes(app: TypedApp, operations: Operations): void {
  app.get("/v1/disks", { schema: { summary: "List disks", response: { 200: Type.Array(DiskInfoSchema), ...errorResponses } } }, () =>
    operations.listDisks(),
  );

  app.post(
    "/v1/disks",
    { schema: { summary: "Create a disk", body: CreateDiskBodySchema, response: { 201: DiskInfoSchema, ...errorResponses } } },
    async (request, reply) => {
      const disk = await operations.createDisk(request.body);
      return reply.code(201).send(disk);
    },
  );

  app.get(
    "/v1/disks/:name",
    { schema: { summary: "Show a disk and its snapshots", params: DiskParamsSchema, response: { 200: DiskDetailSchema, ...errorResponses } } },
    (request) => operations.showDisk(request.params.name),
  );

  app.delete(
    "/v1/disks/:name",
    { schema: { summary: "Delete a disk", params: DiskParamsSchema, response: { 204: Type.Null(), ...errorResponses } } },
    async (request, reply) => {
      await operations.deleteDisk(request.params.name);
      return reply.code(204).send(null);
    },
  );

  app.get(
    "/v1/disks/:name/snapshots",
    { schema: { summary: "List a disk's snapshots", params: DiskParamsSchema, response: { 200: Type.Array(SnapshotInfoSchema), ...errorResponses } } },
    (request) => operations.listSnapshots(request.params.name),
  );

  app.post(
    "/v1/disks/:name/snapshots",
    {
      schema: {
        summary: "Create a snapshot (cut the log)",
        params: DiskParamsSchema,
        body: CreateSnapshotBodySchema,
        response: { 201: SnapshotInfoSchema, ...errorResponses },
      },
      // An empty POST is a snapshot with defaults, so curl -X POST works without a body.
      preValidation: emptyBodyAsObject,
    },
    async (request, reply) => {
      const snapshot = await operations.createSnapshot({ disk: request.params.name, ...request.body });
      return reply.code(201).send(snapshot);
    },
  );

  app.get("/v1/status", { schema: { summary: "Store status", response: { 200: StoreStatusSchema, ...errorResponses } } }, () =>
    operations.status(),
  );

  registerSnapshotDeleteRoute(app, operations);
  registerPolicyRoutes(app, operations);
  registerLongRunningRoutes(app, operations);
  registerScrubRoute(app, operations);
  registerStreamRoutes(app, operations);
}

/** A POST without a body means "all defaults", so curl -X POST works as is. */
async function emptyBodyAsObject(request: { body: unknown }): Promise<void> {
  if (request.body === undefined || request.body === null) request.body = {};
}

/** OpenAPI description of an NDJSON answer whose lines follow `lineSchema`. */
function ndjsonResponse(description: string, lineSchema: TSchema): { description: string; content: Record<string, { schema: TSchema }> } {
  return { description, content: { [ndjsonContentType]: { schema: lineSchema } } };
}

function registerSnapshotDeleteRoute(app: TypedApp, operations: Operations): void {
  app.delete(
    "/v1/disks/:name/snapshots/:snapshot",
    {
      schema: {
        summary: "Delete a snapshot: releases its LUN and merges its partition into the next",
        params: SnapshotParamsSchema,
        response: { 200: DeleteSnapshotResultSchema, ...errorResponses },
      },
    },
    (request) => operations.deleteSnapshot(request.params.name, request.params.snapshot),
  );
}

function registerPolicyRoutes(app: TypedApp, operations: Operations): void {
  app.get(
    "/v1/disks/:name/policy",
    { schema: { summary: "Show a disk's policy", params: DiskParamsSchema, response: { 200: DiskPolicySchema, ...errorResponses } } },
    (request) => operations.showPolicy(request.params.name),
  );

  app.patch(
    "/v1/disks/:name/policy",
    {
      schema: {
        summary: "Change some of a disk's policy; the answer is the whole policy",
        params: DiskParamsSchema,
        body: PolicyUpdateBodySchema,
        response: { 200: DiskPolicySchema, ...errorResponses },
      },
    },
    (request) => operations.setPolicy({ disk: request.params.name, ...request.body }),
  );
}

const progressLineSchema = Type.Union([Type.Object({ progress: ProgressSchema }), ErrorSchema]);

function registerLongRunningRoutes(app: TypedApp, operations: Operations): void {
  app.post(
    "/v1/disks/:name/compact",
    {
      schema: {
        summary: "Compact now (in place, or into the baseline), streaming progress",
        params: DiskParamsSchema,
        body: CompactBodySchema,
        response: {
          200: ndjsonResponse("{progress} lines, then one {result} (CompactResult) or {error} line", Type.Union([progressLineSchema, Type.Object({ result: CompactResultSchema })])),
          ...errorResponses,
        },
      },
      preValidation: emptyBodyAsObject,
    },
    (request, reply) => sendProgressStream(reply, (onProgress) => operations.compact({ disk: request.params.name, ...request.body }, onProgress)),
  );

  app.post(
    "/v1/disks/:name/restore",
    {
      schema: {
        summary: "Restore a point in time to a file, as a snapshot, or by rolling back, streaming progress",
        params: DiskParamsSchema,
        body: RestoreBodySchema,
        response: {
          200: ndjsonResponse("{progress} lines (bytes), then one {result} (RestoreResult) or {error} line", Type.Union([progressLineSchema, Type.Object({ result: RestoreResultSchema })])),
          ...errorResponses,
        },
      },
    },
    (request, reply) => sendProgressStream(reply, (onProgress) => operations.restore({ disk: request.params.name, ...request.body }, onProgress)),
  );
}

/** Scrub is about the store, not one disk: its route takes the disk in the body, and none means all. */
function registerScrubRoute(app: TypedApp, operations: Operations): void {
  app.post(
    "/v1/scrub",
    {
      schema: {
        summary: "Check every live log entry's CRC32C (of one disk, or all), streaming progress; damage is reported in the result, not as an error",
        body: ScrubBodySchema,
        response: {
          200: ndjsonResponse("{progress} lines (index pages), then one {result} (ScrubResult) or {error} line", Type.Union([progressLineSchema, Type.Object({ result: ScrubResultSchema })])),
          ...errorResponses,
        },
      },
      preValidation: emptyBodyAsObject,
    },
    (request, reply) => sendProgressStream(reply, (onProgress) => operations.scrub(request.body, onProgress)),
  );
}

function registerStreamRoutes(app: TypedApp, operations: Operations): void {
  app.get(
    "/v1/disks/:name/log",
    {
      schema: {
        summary: "The log in time order (runs of entries and snapshot cuts), streamed",
        params: DiskParamsSchema,
        querystring: LogQuerySchema,
        response: { 200: ndjsonResponse("one LogEntry per line; a final {error} line if the stream fails midway", Type.Union([LogEntrySchema, ErrorSchema])), ...errorResponses },
      },
    },
    (request, reply) => {
      const { data, ...bounds } = request.query;
      return sendItemStream(reply, operations.readLog({ disk: request.params.name, ...bounds, data: data === "true" }));
    },
  );

  app.get(
    "/v1/disks/:name/diff",
    {
      schema: {
        summary: "The blocks that differ between two volumes, in block order, streamed",
        params: DiskParamsSchema,
        querystring: DiffQuerySchema,
        response: { 200: ndjsonResponse("one DiffRun per line; a final {error} line if the stream fails midway", Type.Union([DiffRunSchema, ErrorSchema])), ...errorResponses },
      },
    },
    (request, reply) => sendItemStream(reply, operations.diff({ disk: request.params.name, ...request.query })),
  );
}

/** The first schema violation, as one line that names the field ("body/sizeBytes must be integer"). */
function formatValidationError(errors: FastifySchemaValidationError[], dataVar: string): Error {
  const [first] = errors;
  const where = `${dataVar}${first?.instancePath ?? ""}`;
  const params = (first?.params ?? {}) as { pattern?: unknown; additionalProperty?: unknown };
  let message = first?.message ?? "is invalid";
  if (first?.keyword === "pattern" && params.pattern === namePattern) {
    message = `must be 1-${nameLengthMax} characters from A-Z, a-z, 0-9, ".", "_" and "-" (not "." or "..")`;
  } else if (first?.keyword === "additionalProperties") {
    message = `has unknown property "${String(params.additionalProperty)}"`;
  }
  return new Error(oneLine(`${where} ${message}`));
}

function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | SnaplogError, request, reply) => {
    if (error instanceof SnaplogError) {
      const status = httpStatusByCode[error.code];
      if (status >= 500) request.log.error({ err: error }, "request failed");
      return reply.code(status).send(errorBody(error));
    }
    const statusCode = error.statusCode ?? 500;
    if (error.validation !== undefined || (statusCode >= 400 && statusCode < 500)) {
      const message = oneLine(error.message);
      return reply.code(statusCode).send({ error: { code: ErrorCodes.INVALID_ARGUMENT, message } });
    }
    request.log.error({ err: error }, "request failed");
    return reply.code(500).send({ error: { code: ErrorCodes.INTERNAL, message: `internal error: ${oneLine(error.message)}` } });
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: { code: ErrorCodes.NOT_FOUND, message: `no route ${request.method} ${request.url.split("?")[0]}` } }),
  );
}

function installTokenCheck(app: FastifyInstance, token: string): void {
  const expected = Buffer.from(`Bearer ${token}`);
  app.addHook("onRequest", async (request, reply) => {
    const given = Buffer.from(request.headers.authorization ?? "");
    if (given.length === expected.length && timingSafeEqual(given, expected)) return;
    await reply
      .code(401)
      .header("www-authenticate", "Bearer")
      .send({
        error: {
          code: ErrorCodes.INVALID_ARGUMENT,
          message: "missing or wrong bearer token",
          hint: "send 'Authorization: Bearer <token>' with the token from the store's api.token file",
        },
      });
  });
}

function installRequestCounter(app: FastifyInstance, registry: Registry): void {
  const existing = registry.getSingleMetric(requestCounterName);
  const counter =
    (existing as Counter<"method" | "route" | "status"> | undefined) ??
    new Counter({
      name: requestCounterName,
      help: "HTTP API requests answered, by route and status",
      labelNames: ["method", "route", "status"] as const,
      registers: [registry],
    });
  app.addHook("onResponse", async (request, reply) => {
    counter.inc({ method: request.method, route: request.routeOptions.url ?? "unknown", status: String(reply.statusCode) });
  });
}

/** Listens on the unix socket, and on TCP when options.tcp is set. */
export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const socketPath = options.socketPath ?? apiSocketPath(options.storePath);
  const tokenPath = options.tokenPath ?? apiTokenPath(options.storePath);
  const metrics = options.metrics ?? createMetricsRegistry();
  const apps: FastifyInstance[] = [];
  let socketClaimed = false;
  const close = async (): Promise<void> => {
    await Promise.allSettled(apps.map((app) => app.close()));
    // Only our own socket: a CONFLICT from claimSocketPath leaves the other server's alone.
    if (socketClaimed) await removeSocket(socketPath).catch(() => undefined);
  };
  try {
    await claimSocketPath(socketPath);
    socketClaimed = true;
    const unixApp = await buildApiApp({ operations: options.operations, metrics, logger: options.logger });
    apps.push(unixApp);
    await unixApp.listen({ path: socketPath });
    await restrictToOwner(socketPath);
    const endpoints = [`api: unix:${socketPath}`];
    let tcp: HostPort | undefined;
    if (options.tcp !== undefined) {
      const token = await ensureToken(tokenPath);
      const tcpApp = await buildApiApp({ operations: options.operations, metrics, logger: options.logger, token });
      apps.push(tcpApp);
      await tcpApp.listen({ host: options.tcp.host, port: options.tcp.port });
      const address = tcpApp.server.address() as AddressInfo;
      tcp = { host: options.tcp.host, port: address.port };
      endpoints.push(`api: http://${formatHostPort(tcp)} (token: ${tokenPath})`);
    }
    return { socketPath, tcp, endpoints, close };
  } catch (error) {
    await close();
    throw listenError(error, options);
  }
}

function listenError(error: unknown, options: ApiServerOptions): unknown {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === "EADDRINUSE" && options.tcp !== undefined) {
    return new SnaplogError(ErrorCodes.CONFLICT, `API address ${formatHostPort(options.tcp)} is in use`, {
      cause: error,
      hint: "choose another --api HOST:PORT",
    });
  }
  return error;
}
