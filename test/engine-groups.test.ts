/**
 * Goal: the engine's groups keep the one-way order their READMEs state (issue 8), so that each
 * reads on its own: space (slots, segment files) ← tables (the in-memory index) ← log (formats,
 * the journal file, checkpoints, recovery) ← write (the commit pipeline) ← history (compaction,
 * folds, the window) ← the facade at the engine's root (disk-engine.ts, read-path.ts,
 * inspections.ts, index.ts). Method: read every engine file's import and export-from statements
 * (type-only ones too) and check that
 *   1. a file of a group imports only its own group, the groups below it, and the engine's base
 *      files (constants, crash points, options, the medium), which import no group;
 *   2. every group folder has a README.md saying what it owns and may import.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, statSync } from "node:fs";
import * as path from "node:path";
import { importsOf, repoRoot, sourceFiles } from "./support/source-imports.js";

const root = repoRoot;
const engine = path.join(root, "src", "engine");

/** The engine's groups, bottom first: each may import those before it. */
const GROUPS = ["space", "tables", "log", "write", "history"];
/** Files at the engine's root that every group may import; they import no group. */
const BASE_FILES = ["constants.ts", "crash-points.ts", "engine-options.ts", "medium.ts"];
/** The rest of the engine's root (the facade and its parts) may import anything in the engine. */
const TOP = ".";
const BASE = "(base)";

/** The group of an engine file: a group folder, BASE, TOP; undefined outside the engine. */
function groupOf(file: string): string | undefined {
  const relative = path.relative(engine, file);
  if (relative.startsWith("..")) return undefined;
  const parts = relative.split(path.sep);
  if (parts.length === 1) return BASE_FILES.includes(parts[0]) ? BASE : TOP;
  return parts[0];
}

function mayImport(from: string, to: string): boolean {
  if (from === to || to === BASE || from === TOP) return true;
  if (from === BASE) return false;
  const fromRank = GROUPS.indexOf(from);
  const toRank = GROUPS.indexOf(to);
  return toRank >= 0 && toRank < fromRank;
}

test("each engine group imports only the groups below it and the base files", () => {
  const problems: string[] = [];
  for (const file of sourceFiles(engine)) {
    const from = groupOf(file)!;
    if (from !== TOP && from !== BASE && !GROUPS.includes(from)) {
      problems.push(`src/engine/${from}/ is not in the group order of test/engine-groups.test.ts (and its README)`);
      continue;
    }
    for (const target of importsOf(file)) {
      const to = groupOf(target);
      if (to === undefined) continue;
      if (!mayImport(from, to)) problems.push(`${path.relative(root, file)} imports ${path.relative(root, target)} (${from} → ${to})`);
    }
  }
  assert.deepEqual(problems, []);
});

test("every engine group folder says what it owns in a README.md", () => {
  const missing = GROUPS.filter((group) => !existsSync(path.join(engine, group, "README.md")));
  assert.deepEqual(missing, []);
  const folders = readdirSync(engine).filter((name) => statSync(path.join(engine, name)).isDirectory());
  assert.deepEqual(folders.sort(), [...GROUPS].sort(), "every folder of src/engine is a group of the order above");
});
