/**
 * The product's version, defined once: package.json's, read once at load. The status answer
 * and `snaplog --version` both use it, so a release changes one line.
 */
import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const PACKAGE_NAME = "snaplog";
/** How far up from this file package.json may be (dist/src/util/ is three below the package). */
const PARENT_DEPTH_MAX = 4;

function readPackageVersion(): string {
  let directory = path.dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth <= PARENT_DEPTH_MAX; depth++) {
    const candidate = path.join(directory, "package.json");
    if (existsSync(candidate)) {
      const manifest = JSON.parse(readFileSync(candidate, "utf8")) as { name?: unknown; version?: unknown };
      if (manifest.name === PACKAGE_NAME && typeof manifest.version === "string") return manifest.version;
    }
    directory = path.dirname(directory);
  }
  throw new Error(`package.json of ${PACKAGE_NAME} not found above ${fileURLToPath(import.meta.url)}`);
}

export const VERSION: string = readPackageVersion();
