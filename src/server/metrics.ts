/**
 * Prometheus metrics of a running appliance: the process defaults plus the NBD server's
 * counters, read when scraped (nothing is counted twice and the data path pays nothing).
 */
import { Counter, Gauge, type Registry } from "prom-client";
import type { NbdCounters, NbdServer } from "../nbd/server.js";

type CounterName = keyof Pick<NbdCounters, "requestCount" | "readBytes" | "writtenBytes" | "errorCount" | "connectionCountTotal">;

const nbdCounterMetrics: ReadonlyArray<{ name: string; help: string; counter: CounterName }> = [
  { name: "snaplog_nbd_requests_total", help: "NBD requests parsed, rejected ones included", counter: "requestCount" },
  { name: "snaplog_nbd_read_bytes_total", help: "Data bytes answered to successful NBD READs", counter: "readBytes" },
  { name: "snaplog_nbd_written_bytes_total", help: "Payload bytes of successful NBD WRITEs", counter: "writtenBytes" },
  {
    name: "snaplog_nbd_errors_total",
    help: "NBD requests answered with an error, plus connections closed for protocol violations",
    counter: "errorCount",
  },
  { name: "snaplog_nbd_connections_total", help: "NBD connections accepted", counter: "connectionCountTotal" },
];

export function registerNbdMetrics(registry: Registry, nbd: NbdServer): void {
  new Gauge({
    name: "snaplog_nbd_connections",
    help: "Open NBD connections (handshake or transmission)",
    registers: [registry],
    collect() {
      this.set(nbd.connectionCount);
    },
  });
  new Gauge({
    name: "snaplog_nbd_buffered_bytes_max",
    help: "High-water mark of the bytes one NBD connection held in flight",
    registers: [registry],
    collect() {
      this.set(nbd.counters.bufferedBytesMax);
    },
  });
  for (const { name, help, counter } of nbdCounterMetrics) {
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(nbd.counters[counter]);
      },
    });
  }
}
