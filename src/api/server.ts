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
import Fastify, {
  LogController,
  type RawServerDefault,
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifySchemaValidationError,
} from "fastify";
import swagger from "@fastify/swagger";
import { Type, type TSchema, type TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import { Counter, Registry, collectDefaultMetrics } from "prom-client";
import type { Operations } from "../store/operations/index.js";
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
import { sendProgressStream, type ProgressTiming } from "./progress-stream.js";
import { claimSocketPath, ensureToken, removeSocket, restrictToOwner } from "./socket.js";
import { failureOf, oneLine } from "./status.js";

export const apiVersion = "1";
const requestCounterName = "snaplog_api_requests_total";

export interface ApiAppOptions {
  operations: Operations;
  metrics: Registry;
  /** When set, every request must carry this bearer token (TCP listeners). */
  token?: string;
  logger?: FastifyBaseLogger;
  /** Pace of the progress lines of compact, restore and scrub (tests: intervalMs 0, or a clock). */
  progress?: Partial<ProgressTiming>;
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
  /** See ApiAppOptions.progress. */
  progress?: Partial<ProgressTiming>;
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
          'Long answers are NDJSON (application/x-ndjson, one JSON document per line); a stream that fails after its first line ends with an {"error": ...} line.',
      },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: options.token === undefined ? [] : [{ bearer: [] }],
    },
  });

  registerOperationRoutes(app, options.operations);
  registerProgressRoutes(app, options.operations, options.progress ?? {});
  registerStreamRoutes(app, options.operations);

  app.get("/v1/openapi.json", { schema: { hide: true } }, () => app.swagger({ yaml: false }));

  app.get("/metrics", { schema: { summary: "Prometheus metrics (text format)" } }, async (_request, reply) => {
    const text = await options.metrics.metrics();
    return reply.header("content-type", options.metrics.contentType).send(text);
  });

  await app.ready();
  return app;
}

type TypedApp = FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, FastifyBaseLogger, TypeBoxTypeProvider>;

const errorResponses = { "4xx": ErrorSchema, "5xx": ErrorSchema } as const;

/** The answers of a route: `ok` on success (200 unless given), and the error body on any 4xx or 5xx. */
function answers<T>(ok: T): { 200: T } & typeof errorResponses;
function answers<T, S extends 201 | 204>(ok: T, status: S): { [K in S]: T } & typeof errorResponses;
function answers<T>(ok: T, status: number = 200): Record<number, T> & typeof errorResponses {
  return { [status]: ok, ...errorResponses } as Record<number, T> & typeof errorResponses;
}

/** The schema of a route about one disk (/v1/disks/:name...): the disk's name is the `name` parameter. */
function aboutDisk<S extends object>(schema: S): S & { params: typeof DiskParamsSchema } {
  return { ...schema, params: DiskParamsSchema };
}

/** The /v1 routes with plain JSON answers: one per Operations method. */
function registerOperationRoutes(app: TypedApp, operations: Operations): void {
  app.get("/v1/disks", { schema: { summary: "List disks", response: answers(Type.Array(DiskInfoSchema)) } }, () => operations.listDisks());

  app.post(
    "/v1/disks",
    { schema: { summary: "Create a disk", body: CreateDiskBodySchema, response: answers(DiskInfoSchema, 201) } },
    async (request, reply) => {
      const disk = await operations.createDisk(request.body);
      return reply.code(201).send(disk);
    },
  );

  app.get(
    "/v1/disks/:name",
    { schema: aboutDisk({ summary: "Show a disk and its snapshots", response: answers(DiskDetailSchema) }) },
    (request) => operations.showDisk(request.params.name),
  );

  app.delete(
    "/v1/disks/:name",
    { schema: aboutDisk({ summary: "Delete a disk", response: answers(Type.Null(), 204) }) },
    async (request, reply) => {
      await operations.deleteDisk(request.params.name);
      return reply.code(204).send(null);
    },
  );

  app.get(
    "/v1/disks/:name/snapshots",
    { schema: aboutDisk({ summary: "List a disk's snapshots", response: answers(Type.Array(SnapshotInfoSchema)) }) },
    (request) => operations.listSnapshots(request.params.name),
  );

  app.post(
    "/v1/disks/:name/snapshots",
    {
      schema: aboutDisk({
        summary: "Create a snapshot (cut the log)",
        body: CreateSnapshotBodySchema,
        response: answers(SnapshotInfoSchema, 201),
      }),
      // An empty POST is a snapshot with defaults, so curl -X POST works without a body.
      preValidation: emptyBodyAsObject,
    },
    async (request, reply) => {
      const snapshot = await operations.createSnapshot({ disk: request.params.name, ...request.body });
      return reply.code(201).send(snapshot);
    },
  );

  app.delete(
    "/v1/disks/:name/snapshots/:snapshot",
    {
      schema: {
        summary: "Delete a snapshot: releases its LUN and merges its partition into the next",
        params: SnapshotParamsSchema,
        response: answers(DeleteSnapshotResultSchema),
      },
    },
    (request) => operations.deleteSnapshot(request.params.name, request.params.snapshot),
  );

  app.get(
    "/v1/disks/:name/policy",
    { schema: aboutDisk({ summary: "Show a disk's policy", response: answers(DiskPolicySchema) }) },
    (request) => operations.showPolicy(request.params.name),
  );

  app.patch(
    "/v1/disks/:name/policy",
    {
      schema: aboutDisk({
        summary: "Change some of a disk's policy; the answer is the whole policy",
        body: PolicyUpdateBodySchema,
        response: answers(DiskPolicySchema),
      }),
    },
    (request) => operations.setPolicy({ disk: request.params.name, ...request.body }),
  );

  app.get("/v1/status", { schema: { summary: "Store status", response: answers(StoreStatusSchema) } }, () => operations.status());
}

/** A POST without a body means "all defaults", so curl -X POST works as is. */
async function emptyBodyAsObject(request: { body: unknown }): Promise<void> {
  if (request.body === undefined || request.body === null) request.body = {};
}

/** OpenAPI description of an NDJSON answer whose lines follow `lineSchema`. */
function ndjsonResponse(description: string, lineSchema: TSchema): { description: string; content: Record<string, { schema: TSchema }> } {
  return { description, content: { [ndjsonContentType]: { schema: lineSchema } } };
}

const progressLineSchema = Type.Union([Type.Object({ progress: ProgressSchema }), ErrorSchema]);

/**
 * The options of a long-running route (compact, restore, scrub): `schema` gives its summary,
 * body and parameters; the answer is NDJSON progress counted in `unit`, then one line with a
 * `result` of `resultSchema` (sendProgressStream). No body at all means an empty one.
 */
function progressRoute<S extends { summary: string; body: TSchema }>(schema: S, unit: string, resultSchema: TSchema) {
  // Each result schema has a title (CompactResult, ...): the type's name in the OpenAPI document.
  const { title } = resultSchema as { title?: string };
  const lines = `{progress} lines (${unit}), then one {result} (${title ?? "result"}) or {error} line`;
  return {
    schema: {
      ...schema,
      response: answers(ndjsonResponse(lines, Type.Union([progressLineSchema, Type.Object({ result: resultSchema })]))),
    },
    preValidation: emptyBodyAsObject,
  };
}

function registerProgressRoutes(app: TypedApp, operations: Operations, timing: Partial<ProgressTiming>): void {
  app.post(
    "/v1/disks/:name/compact",
    progressRoute(
      aboutDisk({ summary: "Compact now (in place, or into the baseline), streaming progress", body: CompactBodySchema }),
      "steps",
      CompactResultSchema,
    ),
    (request, reply) =>
      sendProgressStream(reply, (onProgress) => operations.compact({ disk: request.params.name, ...request.body }, onProgress), timing),
  );

  app.post(
    "/v1/disks/:name/restore",
    progressRoute(
      aboutDisk({
        summary: "Restore a point in time to a file, as a snapshot, or by rolling back, streaming progress",
        body: RestoreBodySchema,
      }),
      "bytes",
      RestoreResultSchema,
    ),
    (request, reply) =>
      sendProgressStream(reply, (onProgress) => operations.restore({ disk: request.params.name, ...request.body }, onProgress), timing),
  );

  // Scrub is about the store, not one disk: the disk is in the body, and none means all.
  app.post(
    "/v1/scrub",
    progressRoute(
      {
        summary:
          "Check every live log entry's CRC32C (of one disk, or all), streaming progress; damage is reported in the result, not as an error",
        body: ScrubBodySchema,
      },
      "index pages",
      ScrubResultSchema,
    ),
    (request, reply) => sendProgressStream(reply, (onProgress) => operations.scrub(request.body, onProgress), timing),
  );
}

function registerStreamRoutes(app: TypedApp, operations: Operations): void {
  app.get(
    "/v1/disks/:name/log",
    {
      schema: aboutDisk({
        summary: "The log in time order (runs of entries and snapshot cuts), streamed",
        querystring: LogQuerySchema,
        response: answers(
          ndjsonResponse(
            "one LogEntry per line; a final {error} line if the stream fails midway",
            Type.Union([LogEntrySchema, ErrorSchema]),
          ),
        ),
      }),
    },
    (request, reply) => {
      const { data, ...bounds } = request.query;
      return sendItemStream(reply, operations.readLog({ disk: request.params.name, ...bounds, data: data === "true" }));
    },
  );

  app.get(
    "/v1/disks/:name/diff",
    {
      schema: aboutDisk({
        summary: "The blocks that differ between two volumes, in block order, streamed",
        querystring: DiffQuerySchema,
        response: answers(
          ndjsonResponse("one DiffRun per line; a final {error} line if the stream fails midway", Type.Union([DiffRunSchema, ErrorSchema])),
        ),
      }),
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
  app.setErrorHandler((error, request, reply) => {
    const failure = failureOf(error);
    request.log[failure.logLevel]({ err: error }, "request failed");
    return reply.code(failure.status).send(failure.body);
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
    const unixApp = await buildApiApp({ operations: options.operations, metrics, logger: options.logger, progress: options.progress });
    apps.push(unixApp);
    await unixApp.listen({ path: socketPath });
    await restrictToOwner(socketPath);
    const endpoints = [`api: unix:${socketPath}`];
    let tcp: HostPort | undefined;
    if (options.tcp !== undefined) {
      const token = await ensureToken(tokenPath);
      const tcpApp = await buildApiApp({
        operations: options.operations,
        metrics,
        logger: options.logger,
        progress: options.progress,
        token,
      });
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
