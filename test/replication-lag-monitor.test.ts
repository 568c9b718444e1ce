/**
 * Goal: `replication-lag` is recorded once when a relation's lag passes the disk's
 * --replication-lag-high, `replication-lag-normal` once when it falls back, nothing for a disk
 * without a mark or an ended relation. Method: the monitor on a real store (its event log and
 * policies), with the relations' lag given by the test (the relations themselves are tested
 * between real servers in replication.test.ts).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ReplicationLagMonitor } from "../src/policy/replication-lag-monitor.js";
import type { RelationInfo } from "../src/store/operations/index.js";
import { Store } from "../src/store/store.js";
import { runCli } from "./support/cli.js";
import { tempDir } from "./support/temp-dir.js";

test("replication-lag once past the mark, replication-lag-normal once back; none without a mark", async () => {
  const storePath = tempDir("lag-monitor");
  runCli(["--store", storePath, "init"]);
  const store = await Store.open(storePath, { mode: "direct" });
  try {
    for (const name of ["vm1", "vm2"]) await store.createDisk({ name, sizeBytes: 1 << 20 });
    await store.setPolicy({ disk: "vm1", replicationLagHighSeconds: 5 });
    const lag = new Map([
      ["vm1", 0],
      ["vm2", 100],
    ]);
    const relation = (disk: string): RelationInfo => ({
      disk,
      to: `snaplog://dr:9090/${disk}`,
      mode: "continuous",
      intervalMs: 60000,
      maxLoadPercent: 20,
      state: "connected",
      reason: null,
      ackedLsn: 1,
      lastAckAt: null,
      lagSeconds: lag.get(disk) ?? 0,
      lagBytes: 0,
      bytesShipped: 0,
      bytesWritten: 0,
      createdAt: "2026-12-06T00:00:00.000Z",
    });
    // The store's relations, with the lag this test sets.
    store.listRelations = async () => [relation("vm1"), relation("vm2")];
    const monitor = new ReplicationLagMonitor(store, { intervalMs: 10 });
    monitor.start();
    const types = async () => {
      const found: string[] = [];
      for await (const event of store.readEvents({}))
        if (event.type.startsWith("replication-lag")) found.push(`${event.type} ${event.disk}`);
      return found;
    };
    const settle = () => new Promise((resolve) => setTimeout(resolve, 80));
    await settle();
    assert.deepEqual(await types(), [], "under the mark, and no mark on vm2");
    lag.set("vm1", 7);
    await settle();
    lag.set("vm1", 9);
    await settle();
    assert.deepEqual(await types(), ["replication-lag vm1"], "once, while it stays past the mark");
    lag.set("vm1", 1);
    await settle();
    assert.deepEqual(await types(), ["replication-lag vm1", "replication-lag-normal vm1"]);
    await monitor.stop();
  } finally {
    await store.close();
  }
});
