/**
 * The running appliance (`snaplog serve`): the store opened in server mode, its policies run
 * (src/policy/runner.ts), the NBD server on its endpoints, and the HTTP API on the store's unix
 * socket (and TCP when asked).
 * cli/serve.ts only parses options and calls startAppliance; tests start it in-process.
 *
 * Lifecycle: startAppliance opens the store first (a second server fails at once with
 * STORE_LOCKED), starts the policy runner (before anything listens, so the actions of every
 * event recorded from then on run), then listens; if any step fails, what was started is closed
 * again. close() stops the policies (a running command is killed), stops accepting, lets the
 * NBD server finish in-flight I/O, closes the API, and closes the store (flush, checkpoint,
 * unlock). close() is idempotent.
 */
import { loadNbdTls, type NbdTlsFiles } from "../nbd/tls.js";
export { checkNbdTlsFiles, type NbdTlsFiles } from "../nbd/tls.js";
import pino, { type Logger } from "pino";
import { NbdServer } from "../nbd/server.js";
import { startApiServer, createMetricsRegistry, type ApiServer } from "../api/server.js";
import type { Clock } from "../policy/clock.js";
import type { HookLimits, RunnerLogger } from "../policy/runner-context.js";
import { PolicyRunner } from "../policy/runner.js";
import { Store, type StoreOpenOptions } from "../store/store.js";
import { ErrorCodes, SnaplogError } from "../util/errors.js";
import { formatHostPort, type HostPort } from "../util/parse.js";
import { registerEventMetrics, registerNbdMetrics, registerReplicationMetrics, registerVaultMetrics } from "./metrics.js";
import { registerDiskCounterMetrics, registerDiskMetrics } from "./disk-metrics.js";
import { SpaceMonitor, type SpaceMonitorOptions } from "../policy/space-monitor.js";
import { ReplicationLagMonitor } from "../policy/replication-lag-monitor.js";

export const nbdDefault: HostPort = { host: "127.0.0.1", port: 10809 };
export const demoDiskName = "demo";
export const demoDiskSizeBytes = 1024 ** 3;

export interface ApplianceOptions {
  storePath: string;
  /** NBD on TCP; default 127.0.0.1:10809; null for none (then nbdSocket should be set). */
  nbd?: HostPort | null;
  /** NBD on a unix socket as well. */
  nbdSocket?: string;
  /** HTTP API on TCP as well (bearer token required). */
  api?: HostPort;
  /** Accept replication from senders here (the same API, bearer token required). */
  replication?: HostPort;
  /** Create the store and a 1 GiB disk "demo" when they are missing. */
  demo?: boolean;
  /** NBD TLS (STARTTLS on every NBD listener): certificate, key, optional client CA and mode. */
  nbdTls?: NbdTlsFiles;
  /** Default: silent. */
  logger?: Logger;
  /** Background compaction timing (defaults in store/background-compaction.ts: every 10 s, idle after 5 s). */
  compaction?: { intervalMs?: number; idleMs?: number };
  /** Space checks (SPEC §4.2; default every 5 s, statfs of the store). */
  space?: Pick<SpaceMonitorOptions, "intervalMs" | "measure">;
  /** The one clock of the policies (and of what the store records of them). Default: the system's. */
  clock?: Clock;
  /** Limits of event actions (defaults in policy/runner-context.ts: a command gets 60 s). */
  hookLimits?: Partial<HookLimits>;
}

export interface Appliance {
  readonly store: Store;
  /** One line per listening endpoint, e.g. "nbd: nbd://127.0.0.1:10809/demo". */
  readonly endpoints: string[];
  /** NBD base URLs, e.g. "nbd://127.0.0.1:10809", "nbd+unix:///?socket=/run/x.sock". */
  readonly nbdUrls: string[];
  readonly api: ApiServer;
  readonly policies: PolicyRunner;
  close(): Promise<void>;
}

export async function startAppliance(options: ApplianceOptions): Promise<Appliance> {
  const logger = options.logger ?? pino({ level: "silent" });
  const store = await openStore(options, logger);
  let policies: PolicyRunner | undefined;
  let nbd: NbdServer | undefined;
  let api: ApiServer | undefined;
  let space: SpaceMonitor | undefined;
  let lag: ReplicationLagMonitor | undefined;
  const closeAll = (): Promise<void> =>
    closeInOrder(
      [() => policies?.stop(), () => nbd?.close(), () => api?.close(), () => space?.stop(), () => lag?.stop(), () => store.close()],
      logger,
    );
  try {
    policies = PolicyRunner.start(store, {
      clock: options.clock,
      logger: runnerLogger(logger),
      limits: options.hookLimits,
    });
    const tls = options.nbdTls === undefined ? undefined : await loadNbdTls(options.nbdTls);
    nbd = new NbdServer({ resolver: store, logger: logger.child({ component: "nbd" }), tls });
    const nbdUrls = await listenNbd(nbd, options);
    const metrics = createMetricsRegistry();
    registerNbdMetrics(metrics, nbd);
    registerReplicationMetrics(metrics, () => store.listRelations());
    registerDiskMetrics(metrics, () => store.listDisks(), nbd.statsByDisk);
    registerDiskCounterMetrics(metrics, () => store.diskCounters());
    registerVaultMetrics(metrics, () => store.vaultActivity());
    registerEventMetrics(metrics, () => store.events.recordedCounts());
    api = await startApiServer({
      operations: store,
      storePath: store.path,
      tcp: options.api,
      replication: options.replication,
      // The TCP faces speak HTTPS with serve's certificate (SPEC §7); client certificates are not asked for there.
      https: tls?.certificate,
      served: { nbd: nbdUrls },
      metrics,
      logger: logger.child({ component: "api" }),
    });
    store.startBackgroundCompaction(options.compaction);
    await store.startReplication();
    space = new SpaceMonitor(store, { ...options.space, onError: (error) => logger.error({ err: error }, "space check failed") });
    space.start();
    lag = new ReplicationLagMonitor(store, { onError: (error) => logger.error({ err: error }, "replication lag check failed") });
    lag.start();

    const exportName = options.demo === true ? demoDiskName : undefined;
    const endpoints = [...nbdUrls.map((url) => `nbd: ${withExport(url, exportName)}`), ...api.endpoints];
    for (const endpoint of endpoints) logger.info({ endpoint }, "listening");
    let closed: Promise<void> | undefined;
    const close = (): Promise<void> => (closed ??= closeAll());
    return { store, endpoints, nbdUrls, api, policies, close };
  } catch (error) {
    await closeAll().catch(() => undefined);
    throw error;
  }
}

/** Runs every step even if one fails (NBD, then API, then store); rethrows the first failure. */
async function closeInOrder(steps: ReadonlyArray<() => Promise<void> | undefined>, logger: Logger): Promise<void> {
  logger.info("shutting down");
  let failure: unknown;
  for (const step of steps) {
    try {
      await step();
    } catch (error) {
      logger.error({ err: error }, "shutdown step failed");
      failure ??= error;
    }
  }
  if (failure !== undefined) throw failure;
  logger.info("store closed");
}

async function openStore(options: ApplianceOptions, logger: Logger): Promise<Store> {
  let store: Store;
  try {
    store = await Store.open(options.storePath, { mode: "server", logger: storeLogger(logger), nowMs: nowMsOf(options.clock) });
  } catch (error) {
    if (options.demo !== true || !(error instanceof SnaplogError) || error.code !== ErrorCodes.NO_STORE) throw error;
    await Store.init(options.storePath, {});
    logger.info({ store: options.storePath }, "demo: created the store");
    store = await Store.open(options.storePath, { mode: "server", logger: storeLogger(logger), nowMs: nowMsOf(options.clock) });
  }
  if (options.demo === true) {
    try {
      await createDemoDisk(store, logger);
    } catch (error) {
      await store.close();
      throw error;
    }
  }
  return store;
}

function storeLogger(logger: Logger): StoreOpenOptions["logger"] {
  const child = logger.child({ component: "store" });
  return { info: (message) => child.info(message), warn: (message) => child.warn(message), error: (message) => child.error(message) };
}

function nowMsOf(clock: Clock | undefined): (() => number) | undefined {
  return clock === undefined ? undefined : () => clock.nowMs();
}

function runnerLogger(logger: Logger): RunnerLogger {
  const child = logger.child({ component: "policy" });
  return {
    info: (message, fields) => child.info(fields ?? {}, message),
    warn: (message, fields) => child.warn(fields ?? {}, message),
    error: (message, fields) => child.error(fields ?? {}, message),
  };
}

async function createDemoDisk(store: Store, logger: Logger): Promise<void> {
  if ((await store.listDisks()).length > 0) return;
  await store.createDisk({ name: demoDiskName, sizeBytes: demoDiskSizeBytes });
  logger.info({ disk: demoDiskName, sizeBytes: demoDiskSizeBytes }, "demo: created disk demo (1 GiB)");
}

async function listenNbd(nbd: NbdServer, options: ApplianceOptions): Promise<string[]> {
  const urls: string[] = [];
  // Clients must use TLS when it is required (libnbd's nbds:// scheme); with `optional` both work.
  const scheme = options.nbdTls !== undefined && (options.nbdTls.mode ?? "required") === "required" ? "nbds" : "nbd";
  const tcp = options.nbd === undefined ? nbdDefault : options.nbd;
  if (tcp !== null) {
    try {
      urls.push(`${scheme}://${await nbd.listen(tcp)}`);
    } catch (error) {
      throw addressError(error, tcp);
    }
  }
  if (options.nbdSocket !== undefined) {
    const socketPath = await nbd.listen({ path: options.nbdSocket });
    urls.push(`${scheme}+unix:///?socket=${socketPath}`);
  }
  if (urls.length === 0) throw new SnaplogError(ErrorCodes.INVALID_ARGUMENT, "no NBD endpoint: give --nbd HOST:PORT or --nbd-socket PATH");
  return urls;
}

function addressError(error: unknown, address: HostPort): unknown {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === "EADDRINUSE") {
    return new SnaplogError(ErrorCodes.CONFLICT, `NBD address ${formatHostPort(address)} is in use`, {
      cause: error,
      hint: "choose another --nbd HOST:PORT (port 0 picks a free one)",
    });
  }
  if (code === "EADDRNOTAVAIL" || code === "ENOTFOUND" || code === "EACCES") {
    return new SnaplogError(ErrorCodes.INVALID_ARGUMENT, `cannot listen on ${formatHostPort(address)}: ${code}`, { cause: error });
  }
  return error;
}

/** "nbd://h:p" + "demo" → "nbd://h:p/demo"; "nbd+unix:///?socket=s" → "nbd+unix:///demo?socket=s". */
function withExport(url: string, exportName: string | undefined): string {
  if (exportName === undefined || exportName === "") return url;
  const encoded = encodeURIComponent(exportName);
  return url.startsWith("nbd+unix:///") ? url.replace("nbd+unix:///", `nbd+unix:///${encoded}`) : `${url}/${encoded}`;
}
