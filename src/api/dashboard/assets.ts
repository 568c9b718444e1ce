/**
 * The dashboard's files: its page, its own scripts (src/dashboard, compiled to
 * dist/src/dashboard), its style, and the libraries it runs on, served from node_modules
 * (nothing from a CDN: it works offline). Only the names in this table are served, so a
 * request cannot reach any other file. Read once, kept in memory (under 200 KiB).
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

export interface Asset {
  contentType: string;
  body: Buffer;
}

const here = path.dirname(fileURLToPath(import.meta.url));
/** dist/src/api/dashboard → the package root, and the compiled client beside this layer. */
const packageRoot = path.resolve(here, "../../../..");
const clientDir = path.resolve(here, "../../dashboard");

const JS = "text/javascript; charset=utf-8";

/** The libraries the page imports by bare name: the import map resolves each to its file here. */
const vendor: Record<string, { url: string; specifier: string }> = {
  preact: { url: "/assets/vendor/preact.js", specifier: "preact" },
  "preact/hooks": { url: "/assets/vendor/preact-hooks.js", specifier: "preact/hooks" },
  htm: { url: "/assets/vendor/htm.js", specifier: "htm" },
  uplot: { url: "/assets/vendor/uplot.js", specifier: "uplot/dist/uPlot.esm.js" },
};

const importMap = JSON.stringify({ imports: Object.fromEntries(Object.entries(vendor).map(([name, { url }]) => [name, url])) });
/** The page's only inline script is the import map; the content security policy allows it by hash. */
const importMapHash = createHash("sha256").update(importMap).digest("base64");

export const dashboardContentSecurityPolicy = [
  "default-src 'self'",
  `script-src 'self' 'sha256-${importMapHash}'`,
  // uPlot sizes its canvas and legend with style attributes.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join("; ");

/** The page; `tokenRequired` tells it to ask for the token before its first call (TCP), so a login is not a counted 401. */
export function dashboardPage(tokenRequired: boolean): Buffer {
  return Buffer.from(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="snaplog-token" content="${tokenRequired ? "required" : "none"}">
<title>snaplog</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/vendor/uplot.css">
<link rel="stylesheet" href="/assets/style.css">
<script type="importmap">${importMap}</script>
<script type="module" src="/assets/app/main.js"></script>
</head>
<body>
<div id="app"><p class="loading">Loading snaplog…</p></div>
<noscript>The snaplog dashboard needs JavaScript; the same is available from the CLI and the API (/v1).</noscript>
</body>
</html>
`);
}

let cached: Map<string, Asset> | undefined;

/** The files served under /assets, by URL path. */
export function dashboardAssets(): Map<string, Asset> {
  if (cached !== undefined) return cached;
  const assets = new Map<string, Asset>();
  assets.set("/assets/style.css", {
    contentType: "text/css; charset=utf-8",
    body: readFileSync(path.join(packageRoot, "src/dashboard/style.css")),
  });
  assets.set("/assets/vendor/uplot.css", {
    contentType: "text/css; charset=utf-8",
    body: readFileSync(resolvePackageFile("uplot/dist/uPlot.min.css")),
  });
  for (const { url, specifier } of Object.values(vendor))
    assets.set(url, { contentType: JS, body: readFileSync(resolvePackageFile(specifier)) });
  for (const file of readdirSync(clientDir)) {
    if (file.endsWith(".js")) assets.set(`/assets/app/${file}`, { contentType: JS, body: readFileSync(path.join(clientDir, file)) });
  }
  cached = assets;
  return assets;
}

function resolvePackageFile(specifier: string): string {
  return fileURLToPath(import.meta.resolve(specifier));
}
