/**
 * Goal: one name rule (issue 8): the CLI, the API and the store accept and refuse exactly the
 * same disk and snapshot names, with the same message (store/names.ts, and for a new snapshot
 * store/new-snapshot-name.ts). They used to disagree: the CLI and the API took `-x` and `.x`,
 * which the store then refused with a third message.
 * Method: every name of one list, as a new disk and as a new snapshot, through three faces,
 * each on a store of its own: the real CLI process (`node dist/src/cli/main.js`, direct mode),
 * the API (fastify inject in front of a real Store: schemas, error mapping and all) and the
 * Store library. Each answer is reduced to "accepted" or "refused: MESSAGE" after checking
 * that a refusal is that face's INVALID_ARGUMENT (exit 2, HTTP 400 and its code, the error
 * code); the three lists of answers must be equal, and match what the rule says.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { buildApiApp, createMetricsRegistry } from "../src/api/server.js";
import { nameProblem, NAME_LENGTH_MAX } from "../src/store/names.js";
import { Store } from "../src/store/store.js";
import { ErrorCodes, SnaplogError } from "../src/util/errors.js";
import { assertSuccess, cliForStore } from "./support/cli.js";
import { tempDir } from "./support/temp-dir.js";

const MiB = 1024 * 1024;
/** The disk every face's snapshots are made on; not in NAMES. */
const DISK = "base-disk";

/** Names each face is asked to create, as a disk and as a snapshot: the edges of the rule and the old disagreements. */
const NAMES = [
  "a",
  "vm1",
  "A.b_c-d",
  "1a",
  "x".repeat(NAME_LENGTH_MAX),
  "2026-11-25",
  "baseline",
  "",
  "-x",
  ".x",
  "_x",
  ".",
  "..",
  "a b",
  "a/b",
  "a@b",
  "lsn:1",
  "ü",
  "x".repeat(NAME_LENGTH_MAX + 1),
];

type Kind = "disk" | "snapshot";
type Face = (kind: Kind, name: string) => Promise<string>;
const ACCEPTED = "accepted";

const directory = tempDir("names");
let library: Store;
let apiStore: Store;
let app: FastifyInstance;
const snaplog = cliForStore(join(directory, "cli"));

before(async () => {
  assertSuccess(snaplog("init"));
  assertSuccess(snaplog("disk", "create", DISK, "--size", "1M"));
  for (const store of ["library", "api"]) await Store.init(join(directory, store));
  library = await Store.open(join(directory, "library"));
  apiStore = await Store.open(join(directory, "api"));
  for (const store of [library, apiStore]) await store.createDisk({ name: DISK, sizeBytes: MiB });
  app = await buildApiApp({ operations: apiStore, metrics: createMetricsRegistry() });
});
after(async () => {
  await app?.close();
  await library?.close();
  await apiStore?.close();
});

const cliFace: Face = async (kind, name) => {
  // `--` and `--name=`: a name that starts with "-" is an argument, not an option to commander.
  const run =
    kind === "disk" ? snaplog("disk", "create", "--size", "1M", "--", name) : snaplog("snapshot", "create", DISK, `--name=${name}`);
  if (run.code === 0) return ACCEPTED;
  assert.equal(run.code, 2, `CLI ${kind} ${JSON.stringify(name)}: exit 2 (INVALID_ARGUMENT); stderr: ${run.stderr}`);
  const [first] = run.stderr.split("\n");
  assert.match(first, /^snaplog: /);
  return `refused: ${first.slice("snaplog: ".length)}`;
};

const apiFace: Face = async (kind, name) => {
  const answer =
    kind === "disk"
      ? await app.inject({ method: "POST", url: "/v1/disks", payload: { name, sizeBytes: MiB } })
      : await app.inject({ method: "POST", url: `/v1/disks/${DISK}/snapshots`, payload: { name } });
  if (answer.statusCode === 201) return ACCEPTED;
  assert.equal(answer.statusCode, 400, `API ${kind} ${JSON.stringify(name)}: ${answer.body}`);
  const { error } = answer.json() as { error: { code: string; message: string } };
  assert.equal(error.code, ErrorCodes.INVALID_ARGUMENT);
  return `refused: ${error.message}`;
};

const libraryFace: Face = async (kind, name) => {
  try {
    if (kind === "disk") await library.createDisk({ name, sizeBytes: MiB });
    else await library.createSnapshot({ disk: DISK, name });
    return ACCEPTED;
  } catch (error) {
    assert.ok(
      error instanceof SnaplogError && error.code === ErrorCodes.INVALID_ARGUMENT,
      `store ${kind} ${JSON.stringify(name)}: ${error}`,
    );
    return `refused: ${error.message}`;
  }
};

async function answersOf(face: Face, kind: Kind): Promise<string[]> {
  const answers: string[] = [];
  for (const name of NAMES) answers.push(`${JSON.stringify(name)} ${await face(kind, name)}`);
  return answers;
}

for (const kind of ["disk", "snapshot"] as const) {
  test(`${kind} names: the CLI, the API and the store accept and refuse the same names with the same message`, async () => {
    const store = await answersOf(libraryFace, kind);
    assert.deepEqual(await answersOf(apiFace, kind), store, "the API answers as the store");
    assert.deepEqual(await answersOf(cliFace, kind), store, "the CLI answers as the store");
    // And the store keeps the rule: every name the rule refuses is refused with its message.
    for (const [index, name] of NAMES.entries()) {
      const problem = nameProblem(kind, name);
      if (problem !== undefined) assert.equal(store[index], `${JSON.stringify(name)} refused: ${problem}`);
    }
    const accepted = store.filter((answer) => answer.endsWith(ACCEPTED)).length;
    assert.ok(accepted >= (kind === "disk" ? 7 : 5), `the valid names are accepted (${accepted})`);
  });
}
