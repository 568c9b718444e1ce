/**
 * Goal: /metrics carries one series per replication relation (SPEC §5.4: lag in seconds and bytes,
 * bytes shipped and written, when the replica last acknowledged), read when scraped. Method: the registry the appliance builds, fed a
 * relation list, rendered as Prometheus text.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Registry } from "prom-client";
import { registerReplicationMetrics } from "../src/server/metrics.js";
import type { RelationInfo } from "../src/store/operations/index.js";

test("each relation is a series per gauge, labelled by disk and target; ended ones read as not connected", async () => {
  const registry = new Registry();
  const relations: RelationInfo[] = [
    {
      disk: "vm1",
      to: "snaplog://dr:9090/vm1",
      mode: "continuous",
      intervalMs: 60000,
      maxLoadPercent: 20,
      state: "connected",
      reason: null,
      ackedLsn: 42,
      lastAckAt: "2026-12-06T10:00:00.000Z",
      lagSeconds: 1.5,
      lagBytes: 8192,
      bytesShipped: 1000,
      bytesWritten: 4096,
      createdAt: "2026-12-06T00:00:00.000Z",
    },
    {
      disk: "vm2",
      to: "snaplog://dr:9090/vm2",
      mode: "compacted",
      intervalMs: 300000,
      maxLoadPercent: 20,
      state: "ended",
      reason: "promoted",
      ackedLsn: null,
      lastAckAt: null,
      lagSeconds: 0,
      lagBytes: 0,
      bytesShipped: 0,
      bytesWritten: 0,
      createdAt: "2026-12-06T00:00:00.000Z",
    },
  ];
  registerReplicationMetrics(registry, async () => relations);
  const text = await registry.metrics();
  assert.match(text, /^snaplog_replication_lag_seconds\{disk="vm1",to="snaplog:\/\/dr:9090\/vm1"\} 1\.5$/m);
  assert.match(text, /^snaplog_replication_lag_bytes\{disk="vm1",to="snaplog:\/\/dr:9090\/vm1"\} 8192$/m);
  assert.match(text, /^snaplog_replication_acked_lsn\{disk="vm2",to="snaplog:\/\/dr:9090\/vm2"\} -1$/m);
  assert.match(text, /^snaplog_replication_connected\{disk="vm2",to="snaplog:\/\/dr:9090\/vm2"\} 0$/m);
  assert.match(text, /^snaplog_replication_shipped_bytes\{disk="vm1",to="snaplog:\/\/dr:9090\/vm1"\} 1000$/m);
  // The last acknowledgement as a time (seconds since the epoch), absent while there is none.
  const ackedAt = Date.parse("2026-12-06T10:00:00.000Z") / 1000;
  assert.match(
    text,
    new RegExp(`^snaplog_replication_last_ack_timestamp_seconds\\{disk="vm1",to="snaplog://dr:9090/vm1"\\} ${ackedAt}$`, "m"),
  );
  assert.doesNotMatch(text, /^snaplog_replication_last_ack_timestamp_seconds\{disk="vm2"/m);
  // A relation stopped since the last scrape leaves no series behind.
  relations.pop();
  assert.doesNotMatch(await registry.metrics(), /disk="vm2"/);
});
