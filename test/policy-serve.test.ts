/**
 * Goal: policies run in the real `snaplog serve` (SPEC §4: "applied by the running server"), seen
 * as a user sees them: `policy set DISK --snapshot-every 1s --keep-last 3` makes auto- snapshots
 * every second and retention prunes them to three; `snaplog events` lists both with their
 * reasons; `GET /v1/events?follow=1` streams them as they happen; `--snapshot-every off` stops
 * the schedule at once, without a restart.
 *
 * Method: the real binary as a child (test/support/serve-child.ts) on a temp store, the CLI as a
 * child through the server's API, and a raw HTTP client on the store's API socket that keeps
 * the follow stream open from before the policy is set. Waits are for facts (events seen), with
 * generous limits: the machine is shared.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import * as path from "node:path";
import { apiSocketPath } from "../src/store/paths.js";
import type { StoreEvent } from "../src/store/event-log.js";
import { killServeChildren, snaplogCli, startServeChild } from "./support/serve-child.js";
import { tempDir } from "./support/temp-dir.js";
import { waitFor } from "./support/wait-for.js";

after(killServeChildren);

/** GET /v1/events?follow=1 on the API socket: every event line as it arrives, until closed. */
function followEvents(storePath: string): { events: StoreEvent[]; close: () => void } {
  const events: StoreEvent[] = [];
  let buffered = "";
  const request = http.get({ socketPath: apiSocketPath(storePath), path: "/v1/events?follow=1" }, (response) => {
    assert.equal(response.statusCode, 200);
    response.setEncoding("utf8");
    response.on("data", (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split("\n");
      buffered = lines.pop() ?? "";
      for (const line of lines) if (line.length > 0) events.push(JSON.parse(line) as StoreEvent);
    });
  });
  request.on("error", () => undefined); // closed by the test, or the server stopped
  return { events, close: () => request.destroy() };
}

async function cli(storePath: string, ...args: string[]): Promise<string> {
  const run = await snaplogCli(storePath, args);
  assert.equal(run.code, 0, `snaplog ${args.join(" ")}: ${run.stderr}`);
  return run.stdout;
}

test("snaplog serve runs a 1 s schedule with keep-last 3: snapshots made and pruned, listed in snaplog events, streamed by GET /v1/events?follow=1", async () => {
  const directory = tempDir("policy-serve");
  const storePath = path.join(directory, "store");
  await cli(storePath, "init");
  const server = await startServeChild(storePath, path.join(directory, "nbd.sock"));
  await cli(storePath, "disk", "create", "d", "--size", "4M");
  const stream = followEvents(storePath);
  after(stream.close);
  // The backlog comes first: the disk's creation says the stream is open.
  await waitFor("the follow stream to be open", () => stream.events.some((event) => event.type === "disk-created"), 30_000);

  await cli(storePath, "policy", "set", "d", "--snapshot-every", "1s", "--keep-last", "3");
  const scheduled = () => stream.events.filter((event) => event.type === "snapshot-created" && event.reason === "scheduled");
  const pruned = () => stream.events.filter((event) => event.type === "snapshot-deleted" && event.reason === "retention");
  await waitFor("six scheduled snapshots and three pruned, streamed", () => scheduled().length >= 6 && pruned().length >= 3, 60_000);

  for (const event of scheduled()) assert.match(event.snapshot ?? "", /^auto-\d{8}T\d{6}Z$/);
  // Slots one second apart, each once.
  const slots = scheduled().map((event) =>
    Date.parse((event.snapshot ?? "").replace(/^auto-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, "$1-$2-$3T$4:$5:$6Z")),
  );
  assert.equal(new Set(slots).size, slots.length, "no slot twice");
  for (const [index, slot] of slots.entries()) if (index > 0) assert.ok(slot > slots[index - 1]);
  // Retention deletes the oldest first and keeps three.
  for (const event of pruned()) assert.ok(scheduled().some((created) => created.snapshot === event.snapshot && created.seq < event.seq));

  const listed = JSON.parse(await cli(storePath, "--json", "snapshot", "list", "d")) as { name: string; scheduled?: boolean }[];
  const autos = listed.filter((snapshot) => snapshot.name.startsWith("auto-"));
  assert.ok(autos.length >= 3 && autos.length <= 4, `kept ${autos.map((snapshot) => snapshot.name).join(", ")} (three, and one just made)`);
  for (const snapshot of listed) assert.equal(snapshot.scheduled, snapshot.name.startsWith("auto-"), `${snapshot.name} "scheduled"`);

  const printed = await cli(storePath, "events", "d");
  assert.match(printed, /snapshot-created {2}d {2}snapshot auto-\d{8}T\d{6}Z of disk d created \(scheduled\)/);
  assert.match(printed, /snapshot-deleted {2}d {2}snapshot auto-\d{8}T\d{6}Z of disk d deleted \(retention\)/);
  const asJson = (await cli(storePath, "--json", "events", "d"))
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as StoreEvent);
  assert.ok(asJson.some((event) => event.type === "policy-changed"));
  for (const event of scheduled()) assert.ok(asJson.some((logged) => logged.seq === event.seq && logged.snapshot === event.snapshot));

  // Stopped at runtime: nothing more is scheduled.
  await cli(storePath, "policy", "set", "d", "--snapshot-every", "off");
  const stoppedAt = stream.events.length;
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const later = stream.events.slice(stoppedAt).filter((event) => event.type === "snapshot-created" && event.reason === "scheduled");
  assert.ok(later.length <= 1, `at most the slot under way when it stopped: ${later.map((event) => event.snapshot).join(", ")}`);
  const shown = JSON.parse(await cli(storePath, "--json", "policy", "show", "d")) as { nextScheduledRun: string | null };
  assert.equal(shown.nextScheduledRun, null);

  stream.close();
  await server.stop();
});
