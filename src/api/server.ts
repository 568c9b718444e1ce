/**
 * The HTTP API (SPEC §3.3): the Operations as JSON under /v1, the OpenAPI document at
 * /v1/openapi.json, Prometheus metrics at /metrics. Always on the store's unix socket
 * (mode 0600: file permissions are the access control); on TCP only when asked, and then
 * every request needs `Authorization: Bearer <token>` from the store's token file.
 *
 * Both listeners serve the same routes from two fastify instances built by buildApiApp;
 * only the TCP one has the token check. Errors are mapped once, by the table in http-status.ts.
 */
import { timingSafeEqual } from "node:crypto";
import type { AddressInfo } from "node:net";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifySchemaValidationError } from "fastify";
import swagger from "@fastify/swagger";
import { Type, type TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import { Counter, Registry, collectDefaultMetrics } from "prom-client";
import type { Operations, ReplicaOperations } from "../store/operations/index.js";
import { nameProblem } from "../store/names.js";
import { apiSocketPath, apiTokenPath } from "../store/paths.js";
import { VaultArea } from "../store/vault-area.js";
import { ErrorCodes, SnaplogError } from "../util/errors.js";
import { formatHostPort, type HostPort } from "../util/parse.js";
import { NOTHING_SERVED, type ServedEndpoints } from "./appliance-status.js";
import { MetricSeries } from "./dashboard/metric-series.js";
import { registerRoutes } from "./routes/index.js";
import { nameKindOfSchema } from "./schemas.js";
import type { ProgressTiming } from "./progress-stream.js";
import { claimSocketPath, removeSocket, restrictToOwner } from "./socket.js";
import { rotateTokenFile, TokenHolder } from "./token.js";
import { failureOf, oneLine } from "./http-status.js";

export const apiVersion = "1";
/** On close, how long requests still running may finish before their connections are cut. */
export const API_CLOSE_GRACE_MS = 3000;
/**
 * Largest JSON request body (names, policies, hooks: a few KiB at most). Streamed bodies
 * (imports, replication batches, vault objects) have their own limits in their routes.
 */
export const API_BODY_BYTES_MAX = 1024 * 1024;
/** Open connections per API listener past which a new one is closed at once (a flood of idle sockets). */
export const API_CONNECTIONS_MAX = 128;
const requestCounterName = "snaplog_api_requests_total";
const unauthorizedCounterName = "snaplog_api_unauthorized_total";

/** Which TCP face an app serves (a label of the 401 counter). */
export type ApiFace = "api" | "replication";

export interface ApiAppOptions {
  /** The store: every operation, and the receiving side of replication (other appliances call it). */
  operations: Operations & ReplicaOperations;
  metrics: Registry;
  /** What the appliance serves, for the status answer; default nothing. */
  served?: ServedEndpoints;
  /** When set, every request must carry its current bearer token (TCP listeners). */
  token?: TokenHolder;
  /** The TCP face, for the 401 counter; default "api". */
  face?: ApiFace;
  /** HTTPS with this certificate and key (TCP listeners, when serve has a certificate). */
  https?: { cert: Buffer; key: Buffer };
  /** Serves POST /v1/token/rotate (the unix socket only: whoever can reach it owns the store). */
  rotateToken?: () => Promise<{ path: string; token: string }>;
  logger?: FastifyBaseLogger;
  /** Pace of the progress lines of compact, restore and scrub (tests: intervalMs 0, or a clock). */
  progress?: Partial<ProgressTiming>;
  /** This appliance as a vault for others (/v1/vault/*); absent, those routes are not served. */
  vaultArea?: VaultArea;
  /** The dashboard's chart samples (one sampler per server, shared by its listeners). */
  series?: MetricSeries;
}

export interface ApiServerOptions {
  /** The store: every operation, and the receiving side of replication (other appliances call it). */
  operations: Operations & ReplicaOperations;
  storePath: string;
  /** Default apiSocketPath(storePath). */
  socketPath?: string;
  /** Default apiTokenPath(storePath). */
  tokenPath?: string;
  tcp?: HostPort;
  /** Where replication senders connect (SPEC §5.4): the same API, bearer token required. */
  replication?: HostPort;
  /** HTTPS on the TCP faces (the API and replication), with serve's certificate. */
  https?: { cert: Buffer; key: Buffer };
  /** What the appliance serves, for the status answer; default nothing. */
  served?: ServedEndpoints;
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
  /** The bound replication address (port 0 resolved). */
  replication?: HostPort;
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
    // fastify's types pick another instance type when `https` is there; the routes use only what both have.
    ...((options.https === undefined ? {} : { https: options.https }) as object),
    ...(options.logger === undefined ? { logger: false } : { loggerInstance: options.logger }),
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: API_BODY_BYTES_MAX,
    // verbose: errors carry the failing value and its schema, for the name rule's message (formatValidationError).
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, verbose: true } },
    schemaErrorFormatter: formatValidationError,
  }).withTypeProvider<TypeBoxTypeProvider>();

  installErrorHandlers(app);
  if (options.token !== undefined) installTokenCheck(app, options.token, unauthorizedCounter(options.metrics), options.face ?? "api");
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
  const rotateToken = options.rotateToken;
  if (rotateToken !== undefined) {
    app.post(
      "/v1/token/rotate",
      {
        schema: {
          summary: "A new bearer token for the TCP faces, in force at once (the old one is refused from now on); unix socket only",
          response: { 200: Type.Object({ path: Type.String(), token: Type.String() }, { title: "TokenRotated" }) },
        },
      },
      () => rotateToken(),
    );
  }

  registerRoutes(app, {
    operations: options.operations,
    metrics: options.metrics,
    served: options.served ?? NOTHING_SERVED,
    progress: options.progress ?? {},
    vaultArea: options.vaultArea,
    series: options.series,
    tokenRequired: options.token !== undefined,
  });
  app.get("/v1/openapi.json", { schema: { hide: true } }, () => app.swagger({ yaml: false }));

  await app.ready();
  return app;
}

/** What ajv adds to an error with its `verbose` option: the failing value and the schema that refused it. */
type VerboseValidationError = FastifySchemaValidationError & { data?: unknown; parentSchema?: unknown };

/**
 * The first schema violation, as one line that names the field ("body/sizeBytes must be
 * integer"); a name that breaks the name rule gets the store's own message (store/names.ts),
 * the same the CLI and the store give.
 */
function formatValidationError(errors: FastifySchemaValidationError[], dataVar: string): Error {
  const first = errors[0] as VerboseValidationError | undefined;
  const nameKind = first?.keyword === "pattern" ? nameKindOfSchema(first.parentSchema) : undefined;
  const nameMessage = nameKind === undefined ? undefined : nameProblem(nameKind, String(first?.data));
  if (nameMessage !== undefined) return new Error(oneLine(nameMessage));
  const where = `${dataVar}${first?.instancePath ?? ""}`;
  const params = (first?.params ?? {}) as { additionalProperty?: unknown };
  let message = first?.message ?? "is invalid";
  if (first?.keyword === "additionalProperties") message = `has unknown property "${String(params.additionalProperty)}"`;
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

function installTokenCheck(app: FastifyInstance, token: TokenHolder, unauthorized: Counter<"face">, face: ApiFace): void {
  app.addHook("onRequest", async (request, reply) => {
    // The dashboard's page and files hold no data: the page asks for the token, then sends it.
    if (request.routeOptions.config.public === true) return;
    // Read per request: a rotation takes effect at once.
    const expected = token.expectedHeader;
    const given = Buffer.from(request.headers.authorization ?? "");
    if (given.length === expected.length && timingSafeEqual(given, expected)) return;
    unauthorized.inc({ face });
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

/** 401s by face: a wrong or missing token (something to alert on: a guesser, or a peer with an old token). */
function unauthorizedCounter(registry: Registry): Counter<"face"> {
  return (
    (registry.getSingleMetric(unauthorizedCounterName) as Counter<"face"> | undefined) ??
    new Counter({
      name: unauthorizedCounterName,
      help: "Requests refused on a TCP face for a missing or wrong bearer token",
      labelNames: ["face"] as const,
      registers: [registry],
    })
  );
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
  const vaultArea = new VaultArea(options.storePath);
  const series = new MetricSeries(metrics);
  const appOptions = {
    series,
    operations: options.operations,
    served: options.served,
    logger: options.logger,
    progress: options.progress,
    vaultArea,
  };
  const apps: FastifyInstance[] = [];
  let socketClaimed = false;
  const close = async (): Promise<void> => {
    series.stop();
    // Connections still busy after the grace (a followed stream, a client that stopped reading
    // its answer) are cut: a slow or hostile client must not hold up shutdown.
    const cut = setTimeout(() => {
      for (const app of apps) app.server.closeAllConnections();
    }, API_CLOSE_GRACE_MS);
    await Promise.allSettled(apps.map((app) => app.close()));
    clearTimeout(cut);
    // Only our own socket: a CONFLICT from claimSocketPath leaves the other server's alone.
    if (socketClaimed) await removeSocket(socketPath).catch(() => undefined);
  };
  try {
    await claimSocketPath(socketPath);
    socketClaimed = true;
    // The token is loaded (made if missing) only when a TCP face needs it.
    const token = options.tcp === undefined && options.replication === undefined ? undefined : await TokenHolder.load(tokenPath);
    const rotateToken = async () => ({
      path: tokenPath,
      token: token === undefined ? await rotateTokenFile(tokenPath) : await token.rotate(),
    });
    const unixApp = await buildApiApp({ ...appOptions, metrics, rotateToken });
    apps.push(unixApp);
    await unixApp.listen({ path: socketPath });
    unixApp.server.maxConnections = API_CONNECTIONS_MAX;
    await restrictToOwner(socketPath);
    const endpoints = [`api: unix:${socketPath}`];
    // TCP faces (the API, and replication's) need the bearer token.
    const listenTcp = async (address: HostPort, face: ApiFace): Promise<HostPort> => {
      const tcpApp = await buildApiApp({ ...appOptions, metrics, token, face, https: options.https });
      apps.push(tcpApp);
      await tcpApp.listen({ host: address.host, port: address.port });
      tcpApp.server.maxConnections = API_CONNECTIONS_MAX;
      return { host: address.host, port: (tcpApp.server.address() as AddressInfo).port };
    };
    const tcp = options.tcp === undefined ? undefined : await listenTcp(options.tcp, "api");
    const scheme = options.https === undefined ? "http" : "https";
    if (tcp !== undefined) endpoints.push(`api: ${scheme}://${formatHostPort(tcp)} (token: ${tokenPath})`);
    const replication = options.replication === undefined ? undefined : await listenTcp(options.replication, "replication");
    if (replication !== undefined) {
      const scheme = options.https === undefined ? "snaplog" : "snaplogs";
      endpoints.push(`replication: ${scheme}://${formatHostPort(replication)}/DISK (token: ${tokenPath})`);
    }
    series.start();
    return { socketPath, tcp, replication, endpoints, close };
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
