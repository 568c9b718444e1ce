/**
 * Goal: API bodies, path parameters and query strings from outside (SPEC §7) cost one request:
 * whatever is sent to any route of the OpenAPI document, the answer is a 2xx or a 4xx with a
 * typed error body, never a 500 or a hang, and the server then serves a well-formed request.
 * Method: fast-check picks a route and method from the published OpenAPI document, fills its
 * path parameters, query and body with random values (strings with odd bytes, numbers out of
 * range, nested JSON of the wrong shape), and injects it into the API app on a real store.
 * Runs: SNAPLOG_FUZZ_RUNS (default 150).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import type { FastifyInstance } from "fastify";
import fc from "fast-check";
import { buildApiApp, createMetricsRegistry } from "../src/api/server.js";
import { Store } from "../src/store/store.js";
import { withCauseShown } from "./support/fast-check-report.js";
import { tempDir } from "./support/temp-dir.js";

const RUNS = Number(process.env.SNAPLOG_FUZZ_RUNS ?? 150);
let store: Store;
let app: FastifyInstance;
let routes: { method: string; url: string }[] = [];

/** Routes that stream a body in (archive imports, replication batches) or long answers: fuzzed with JSON-shaped bodies too. */
// At load: a tempDir made inside a hook would be removed when that hook ends.
const storePath = path.join(tempDir("api-fuzz"), "store");

before(async () => {
  await Store.init(storePath);
  store = await Store.open(storePath);
  await store.createDisk({ name: "d", sizeBytes: 1024 * 1024 });
  await store.createSnapshot({ disk: "d", name: "s" });
  app = await buildApiApp({ operations: store, metrics: createMetricsRegistry(), progress: { intervalMs: 0 } });
  const document = (await app.inject({ method: "GET", url: "/v1/openapi.json" })).json<{
    paths: Record<string, Record<string, unknown>>;
  }>();
  for (const [url, methods] of Object.entries(document.paths))
    for (const method of Object.keys(methods)) routes.push({ method: method.toUpperCase(), url });
  routes = routes.filter((route) => !(route.method === "DELETE" && route.url === "/v1/disks/{name}"));
});
after(async () => {
  await app?.close();
  await store?.close();
});

const oddString = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.constantFrom(
    "d",
    "s",
    "",
    "..",
    "../etc",
    "%00",
    "a/b",
    "lsn:-1",
    "lsn:99999999999999999999",
    "2026-13-45T99:00:00Z",
    "-x",
    ".x",
    "💥",
  ),
);
const value: fc.Arbitrary<unknown> = fc.oneof(
  oddString,
  fc.integer(),
  fc.double(),
  fc.constantFrom(Number.MAX_SAFE_INTEGER, -1, 0, 2 ** 53, 1e308),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string({ maxLength: 8 }), { maxLength: 4 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }),
);
const body = fc.oneof(
  fc.dictionary(
    fc.constantFrom(
      "name",
      "sizeBytes",
      "disk",
      "to",
      "from",
      "at",
      "snapshot",
      "lun",
      "mode",
      "url",
      "history",
      "keepLast",
      "force",
      "compact",
      "vault",
    ),
    value,
    { maxKeys: 6 },
  ),
  value,
);

test(
  `random path parameters, queries and bodies on every route (${RUNS} runs): 2xx or 4xx, never 5xx`,
  { timeout: 30 * 60_000 },
  async () => {
    assert.ok(routes.length > 20, `the OpenAPI document lists the routes (${routes.length})`);
    await withCauseShown(() =>
      fc.assert(
        fc.asyncProperty(
          fc.nat(),
          fc.array(oddString, { minLength: 3, maxLength: 3 }),
          fc.dictionary(
            fc.constantFrom("to", "from", "since", "until", "at", "compact", "order", "force", "json", "follow"),
            fc.string({ maxLength: 12 }),
            { maxKeys: 3 },
          ),
          body,
          async (pick, params, query, payload) => {
            const route = routes[pick % routes.length];
            let index = 0;
            const url = route.url.replace(/\{[^}]+\}/g, () => encodeURIComponent(params[index++ % params.length]));
            const response = await app.inject({
              method: route.method as "GET",
              url,
              query,
              ...(route.method === "GET" || route.method === "DELETE"
                ? {}
                : { payload: payload === undefined ? "" : JSON.stringify(payload), headers: { "content-type": "application/json" } }),
            });
            assert.ok(
              response.statusCode < 500 || response.statusCode === 501,
              `${route.method} ${url} ${JSON.stringify(query)} ${JSON.stringify(payload)}: HTTP ${response.statusCode} ${response.body.slice(0, 300)}`,
            );
            if (response.statusCode >= 400 && response.headers["content-type"]?.toString().includes("json")) {
              const error = (response.json() as { error?: { code?: string; message?: string } }).error;
              assert.match(error?.code ?? "", /^SNAPLOG_/, `${route.method} ${url}: a typed error: ${response.body.slice(0, 200)}`);
            }
          },
        ),
        { numRuns: RUNS },
      ),
    );
    const disks = await app.inject({ method: "GET", url: "/v1/disks" });
    assert.equal(disks.statusCode, 200);
    assert.ok(
      (disks.json() as { name: string }[]).some((disk) => disk.name === "d"),
      "the disk is still served",
    );
  },
);

test("a streamed route (import, replication batch) given JSON instead of a stream: 400, not a crash", async () => {
  for (const url of ["/v1/disks/d/import", "/v1/replica/d/batch"]) {
    const response = await app.inject({ method: "POST", url, payload: "false", headers: { "content-type": "application/json" } });
    assert.equal(response.statusCode, 400, `${url}: ${response.body}`);
    assert.match(response.body, /application\/octet-stream/);
  }
});
