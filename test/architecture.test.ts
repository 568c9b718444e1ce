/**
 * Goal: the layers of docs/architecture.md hold in the code, so that they stay true as the
 * tree grows (issue 8). Method: read every source file's import and export-from statements
 * (type-only ones too: a type cycle still ties two files together) and check
 *   1. each top-level folder of src/ imports only the folders its layer may (LAYERS below);
 *   2. nothing outside src/engine imports an engine file other than src/engine/index.ts: in
 *      src/, sim/ and bench/ (unit tests of the engine's insides, in test/, may);
 *   3. there is no import cycle among the files of src/;
 *   4. no protocol word below nbd/: the engine, the store and util name no NBD constant or
 *      endpoint (identifiers containing "nbd", outside comments and strings).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { importsOf, repoRoot, sourceFiles } from "./support/source-imports.js";

const root = repoRoot;

/** What each folder of src/ may import, besides itself. */
const LAYERS: Record<string, string[]> = {
  util: [],
  engine: ["util"],
  stream: ["util"],
  vault: ["util"],
  store: ["util", "engine", "stream", "vault"],
  nbd: ["util", "store"],
  api: ["util", "stream", "store"],
  policy: ["util", "store"],
  server: ["util", "store", "nbd", "api", "policy"],
  cli: ["util", "stream", "store", "api", "server"],
  // The web dashboard runs in the browser: it reaches the appliance only through the HTTP API.
  dashboard: [],
};
/** Files at the root of src/ (the library entry) may import any layer. */
const ROOT_FOLDER = ".";

function folderOf(file: string): string {
  const relative = path.relative(path.join(root, "src"), file);
  const parts = relative.split(path.sep);
  return parts.length === 1 ? ROOT_FOLDER : parts[0];
}

const srcFiles = sourceFiles(path.join(root, "src"));

test("each layer of src/ imports only the layers below it", () => {
  const problems: string[] = [];
  for (const file of srcFiles) {
    const from = folderOf(file);
    if (from === ROOT_FOLDER) continue;
    const allowed = LAYERS[from];
    if (allowed === undefined) {
      problems.push(`src/${from}/ is not in the layer table of test/architecture.test.ts (and docs/architecture.md)`);
      continue;
    }
    for (const target of importsOf(file)) {
      const to = folderOf(target);
      if (to !== from && !allowed.includes(to))
        problems.push(
          `${path.relative(root, file)} imports ${path.relative(root, target)} (${from} may import ${allowed.join(", ") || "nothing"})`,
        );
    }
  }
  assert.deepEqual(problems, []);
});

test("outside the engine, only src/engine/index.ts is imported", () => {
  const engineIndex = path.join(root, "src", "engine", "index.ts");
  const engineDirectory = path.join(root, "src", "engine") + path.sep;
  const outside = [...srcFiles, ...sourceFiles(path.join(root, "sim")), ...sourceFiles(path.join(root, "bench"))].filter(
    (file) => !file.startsWith(engineDirectory),
  );
  const problems: string[] = [];
  for (const file of outside) {
    for (const target of importsOf(file)) {
      if (target.startsWith(engineDirectory) && target !== engineIndex)
        problems.push(`${path.relative(root, file)} imports ${path.relative(root, target)}`);
    }
  }
  assert.deepEqual(problems, []);
});

test("no import cycle among the files of src/", () => {
  const graph = new Map(srcFiles.map((file) => [file, importsOf(file)]));
  const state = new Map<string, "visiting" | "done">();
  const cycles: string[] = [];
  // Depth-first with an explicit stack (the lint rule forbids recursion in src/; the test follows suit).
  for (const start of srcFiles) {
    if (state.has(start)) continue;
    const stack: { file: string; next: number }[] = [{ file: start, next: 0 }];
    state.set(start, "visiting");
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const targets = graph.get(top.file) ?? [];
      if (top.next === targets.length) {
        state.set(top.file, "done");
        stack.pop();
        continue;
      }
      const target = targets[top.next++];
      if (state.get(target) === "visiting") {
        const from = stack.findIndex((frame) => frame.file === target);
        cycles.push([...stack.slice(from).map((frame) => path.relative(root, frame.file)), path.relative(root, target)].join(" → "));
      } else if (!state.has(target) && graph.has(target)) {
        state.set(target, "visiting");
        stack.push({ file: target, next: 0 });
      }
    }
  }
  assert.deepEqual(cycles, []);
});

test("no protocol word below nbd/: the engine, the store and util name nothing of NBD", () => {
  const below = srcFiles.filter((file) => ["engine", "store", "util"].includes(folderOf(file)));
  const problems: string[] = [];
  for (const file of below) {
    const code = readFileSync(file, "utf8")
      .replace(/\/\*[\s\S]*?\*\//g, "")
      .replace(/\/\/.*$/gm, "")
      .replace(/"(?:[^"\\\n]|\\.)*"|`(?:[^`\\]|\\.)*`/g, '""');
    for (const match of code.matchAll(/\b\w*nbd\w*\b/gi)) problems.push(`${path.relative(root, file)}: ${match[0]}`);
  }
  assert.deepEqual(problems, []);
});
