/**
 * The source tree as a graph, for the architecture tests: the .ts files under a folder, and the
 * relative modules each imports or re-exports (type-only ones too), resolved to .ts paths.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

/** The repository (dist/test/support/… → the checkout). */
export const repoRoot = path.resolve(fileURLToPath(new URL("../../..", import.meta.url)));

export function sourceFiles(directory: string): string[] {
  const files: string[] = [];
  const pending = [directory];
  while (pending.length > 0) {
    const current = pending.pop()!;
    for (const name of readdirSync(current)) {
      const full = path.join(current, name);
      if (statSync(full).isDirectory()) pending.push(full);
      else if (name.endsWith(".ts") && !name.endsWith(".d.ts")) files.push(full);
    }
  }
  return files.sort();
}

export function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const targets: string[] = [];
  for (const match of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s+"(\.{1,2}\/[^"]+)\.js"/g)) {
    targets.push(path.resolve(path.dirname(file), `${match[1]}.ts`));
  }
  for (const match of text.matchAll(/\bimport\(\s*"(\.{1,2}\/[^"]+)\.js"\s*\)/g))
    targets.push(path.resolve(path.dirname(file), `${match[1]}.ts`));
  return targets;
}
