/**
 * `snaplog serve`: parses options and runs the appliance (src/server/appliance.ts) until
 * SIGTERM or SIGINT. The first signal shuts down cleanly (stop accepting, finish in-flight
 * I/O, close the API, flush and checkpoint the store) and exits 0; a second signal during
 * shutdown exits at once with 1.
 */
import path from "node:path";
import type { Command } from "commander";
import pino from "pino";
import { checkNbdTlsFiles, startAppliance, type NbdTlsFiles } from "../server/appliance.js";
import { invalidArgument } from "../util/errors.js";
import { parseCount, parseHostPort } from "../util/parse.js";
import { globalOptions } from "./context.js";
import { printJson, printLine } from "./output.js";
import { missingServerNodeFlags } from "../server/node-flags.js";

interface ServeOptions {
  nbd: string;
  nbdSocket?: string;
  api?: string;
  replication?: string;
  demo?: boolean;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  tlsPsk?: string;
  tls?: string;
}

const shutdownSignals = ["SIGTERM", "SIGINT"] as const;

export function registerServe(program: Command, reportError: (error: unknown) => number): void {
  program
    .command("serve")
    .description("run the appliance: NBD exports for every disk and snapshot, and the HTTP API")
    .option("--nbd <host:port>", "NBD listen address (port 0: any free port)", "127.0.0.1:10809")
    .option("--nbd-socket <path>", "also serve NBD on this unix socket")
    .option("--api <host:port>", "also serve the HTTP API on TCP; requests need the bearer token from STORE/api.token")
    .option("--replication <host:port>", "accept replication from other appliances here (bearer token from STORE/api.token)")
    .option("--demo", 'create the store and a 1 GiB disk "demo" if missing')
    .option("--tls-cert <file>", "NBD TLS: the server's PEM certificate (STARTTLS on every NBD listener)")
    .option("--tls-key <file>", "NBD TLS: the certificate's PEM private key")
    .option("--tls-ca <file>", "NBD TLS: accept only clients with a certificate this CA signed")
    .option("--tls-psk <file>", "NBD TLS with pre-shared keys instead of certificates: username:hexkey lines (qemu's and libnbd's format)")
    .option("--tls <mode>", "NBD TLS: required (default with a certificate: no export without TLS) or optional")
    .addHelpText(
      "after",
      [
        "",
        "The HTTP API is always on the unix socket STORE/api.sock; while serve runs, other",
        "snaplog commands on the same store go through it. SIGTERM or SIGINT shuts down",
        "cleanly (in-flight I/O finished, store flushed and checkpointed).",
        "",
        "Examples:",
        "  $ snaplog serve --demo",
        "  $ sudo nbd-client -N demo 127.0.0.1 10809 /dev/nbd0",
        "  $ snaplog --store /srv/snaplog serve --nbd 0.0.0.0:10809 --api 127.0.0.1:8080",
        "  $ snaplog serve --nbd-socket /run/snaplog/nbd.sock",
        "  $ curl --unix-socket ./snaplog-data/api.sock http://localhost/v1/disks",
        "  $ snaplog serve --tls-cert server-cert.pem --tls-key server-key.pem",
        "  $ nbdinfo 'nbds://127.0.0.1/demo?tls-certificates=/etc/pki/snaplog'",
        "",
        "Log level: SNAPLOG_LOG_LEVEL (info by default; logs go to stderr).",
      ].join("\n"),
    )
    .action(async (options: ServeOptions, command: Command) => {
      const { storePath, json } = globalOptions(command);
      const nbd = parseHostPort(options.nbd, "127.0.0.1");
      const api = options.api === undefined ? undefined : parseHostPort(options.api, "127.0.0.1");
      const replication = options.replication === undefined ? undefined : parseHostPort(options.replication, "127.0.0.1");
      const nbdSocket = options.nbdSocket === undefined ? undefined : path.resolve(options.nbdSocket);
      const nbdTls = tlsFilesOf(options);
      const logger = pino({ level: process.env.SNAPLOG_LOG_LEVEL ?? "info" }, pino.destination({ fd: 2, sync: true }));
      const appliance = await startAppliance({
        storePath,
        nbd,
        nbdSocket,
        api,
        replication,
        demo: options.demo === true,
        nbdTls,
        logger,
        compaction: compactionTimingFromEnvironment(),
      });
      const missingFlags = missingServerNodeFlags();
      if (missingFlags.length > 0)
        logger.info(
          { missingFlags },
          `node was started without ${missingFlags.join(" ")}: large sequential writes cost about a fifth more CPU (the snaplog launcher and npm start pass it)`,
        );
      if (json) printJson({ endpoints: appliance.endpoints, nbd: appliance.nbdUrls, api: appliance.api.endpoints });
      else for (const endpoint of appliance.endpoints) printLine(endpoint);

      let shuttingDown = false;
      const onSignal = (signal: NodeJS.Signals): void => {
        if (shuttingDown) {
          logger.warn({ signal }, "second signal during shutdown: exiting at once");
          process.exit(1);
        }
        shuttingDown = true;
        logger.info({ signal }, "signal received");
        appliance.close().then(
          () => process.exit(0),
          (error: unknown) => process.exit(reportError(error)),
        );
      };
      for (const signal of shutdownSignals) process.on(signal, onSignal);
    });
}

/** The NBD TLS options, checked together before the store is opened (the rule is checkNbdTlsFiles's); none given: no TLS. */
function tlsFilesOf(options: ServeOptions): NbdTlsFiles | undefined {
  const resolve = (file: string | undefined) => (file === undefined ? undefined : path.resolve(file));
  const given = {
    certPath: resolve(options.tlsCert),
    keyPath: resolve(options.tlsKey),
    caPath: resolve(options.tlsCa),
    pskPath: resolve(options.tlsPsk),
    mode: options.tls,
  };
  if (Object.values(given).every((value) => value === undefined)) return undefined;
  return checkNbdTlsFiles(given);
}

/** Shortest background compaction interval: a pass looks at every disk, so not more often than this. */
const compactIntervalMsMin = 100;
/** Longest delay a timer takes (2^31 - 1 ms, about 24.8 days); longer ones would fire at once. */
const timerDelayMsMax = 2 ** 31 - 1;

/**
 * Background compaction timing, from SNAPLOG_COMPACT_INTERVAL_MS and SNAPLOG_COMPACT_IDLE_MS
 * (tests and impatient operators; the defaults suit a server). Whole milliseconds, bounded.
 */
function compactionTimingFromEnvironment(): { intervalMs?: number; idleMs?: number } {
  const read = (name: string, min: number): number | undefined => {
    const text = process.env[name];
    if (text === undefined || text === "") return undefined;
    const value = parseCount(text, name);
    if (value < min || value > timerDelayMsMax)
      throw invalidArgument(`invalid ${name} "${text}": expected milliseconds from ${min} to ${timerDelayMsMax}`);
    return value;
  };
  return { intervalMs: read("SNAPLOG_COMPACT_INTERVAL_MS", compactIntervalMsMin), idleMs: read("SNAPLOG_COMPACT_IDLE_MS", 0) };
}
