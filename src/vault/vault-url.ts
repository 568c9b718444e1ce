/**
 * The three vault URLs of SPEC §5.3, parsed and validated (INVALID_ARGUMENT with a clear
 * message), each with its description: the URL with any secret removed, for messages.
 *   file:///path                              a directory (made at init if its parent exists)
 *   s3://bucket/prefix?endpoint=URL&region=R  an S3 bucket (AWS, or any S3-compatible endpoint)
 *   snaplog://HOST:PORT                       another snaplog appliance's API (TCP, bearer token)
 *   snaplogs://HOST:PORT                      the same over HTTPS (a peer serving with --tls-cert)
 */
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { invalidArgument } from "../util/errors.js";
import { checkVaultPrefix } from "./vault-key.js";

export interface DirectoryVaultTarget {
  kind: "directory";
  /** Absolute, normalized. */
  path: string;
  description: string;
}

export interface S3VaultTarget {
  kind: "s3";
  bucket: string;
  /** "" or ending with "/": every key is stored as prefix + key. */
  prefix: string;
  /** A custom (non-AWS) endpoint: path-style addressing and checksums only when required. */
  endpoint?: string;
  region: string;
  description: string;
}

export interface ApplianceVaultTarget {
  kind: "appliance";
  /** http://HOST:PORT, the peer's TCP API. */
  baseUrl: string;
  description: string;
}

export type VaultTarget = DirectoryVaultTarget | S3VaultTarget | ApplianceVaultTarget;

const urlForms = "file:///path, s3://bucket/prefix?endpoint=URL&region=R or snaplog[s]://HOST:PORT";
const bucketName = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const regionName = /^[a-z0-9-]{1,32}$/;
const s3Parameters = new Set(["endpoint", "region"]);

export function parseVaultUrl(text: string): VaultTarget {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalidArgument(`invalid vault URL ${JSON.stringify(text)}: expected ${urlForms}`);
  }
  if (url.username !== "" || url.password !== "") {
    // Secrets in URLs end up in shell history, logs and messages.
    throw invalidArgument(`invalid vault URL: no user or password in the URL`, {
      hint: "give S3 keys with a credentials file or the AWS environment, a snaplog token with a token file",
    });
  }
  if (url.hash !== "") throw invalidArgument(`invalid vault URL ${JSON.stringify(text)}: no #fragment`);
  switch (url.protocol) {
    case "file:":
      return parseDirectoryUrl(url, text);
    case "s3:":
      return parseS3Url(url, text);
    case "snaplog:":
    case "snaplogs:":
      return parseApplianceUrl(url, text);
    default:
      throw invalidArgument(`invalid vault URL ${JSON.stringify(text)}: unknown scheme ${url.protocol} (expected ${urlForms})`);
  }
}

function parseDirectoryUrl(url: URL, text: string): DirectoryVaultTarget {
  if (url.search !== "") throw invalidArgument(`invalid vault URL ${JSON.stringify(text)}: a file URL takes no ?parameters`);
  if (url.host !== "" && url.host !== "localhost") {
    throw invalidArgument(`invalid vault URL ${JSON.stringify(text)}: a file URL names a local path (file:///path)`);
  }
  const directory = path.resolve(fileURLToPath(url));
  if (directory === path.parse(directory).root) throw invalidArgument(`invalid vault URL ${JSON.stringify(text)}: not the root directory`);
  return { kind: "directory", path: directory, description: `file://${directory}` };
}

function parseS3Url(url: URL, text: string): S3VaultTarget {
  const bucket = url.host;
  if (!bucketName.test(bucket)) {
    throw invalidArgument(
      `invalid vault URL ${JSON.stringify(text)}: bucket name ${JSON.stringify(bucket)} is not valid (3-63 of a-z 0-9 . -)`,
    );
  }
  const prefixText = decodeURIComponent(url.pathname).replace(/^\/+/, "").replace(/\/+$/, "");
  checkVaultPrefix(prefixText);
  const prefix = prefixText === "" ? "" : `${prefixText}/`;
  for (const name of url.searchParams.keys()) {
    if (!s3Parameters.has(name))
      throw invalidArgument(`invalid vault URL ${JSON.stringify(text)}: unknown parameter ${name} (endpoint, region)`);
  }
  const endpoint = url.searchParams.get("endpoint") ?? undefined;
  if (endpoint !== undefined) checkEndpoint(endpoint, text);
  const region = url.searchParams.get("region") ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? "us-east-1";
  if (!regionName.test(region))
    throw invalidArgument(`invalid vault URL ${JSON.stringify(text)}: region ${JSON.stringify(region)} is not valid`);
  const query = [
    endpoint === undefined ? undefined : `endpoint=${endpoint}`,
    url.searchParams.has("region") ? `region=${region}` : undefined,
  ]
    .filter((part) => part !== undefined)
    .join("&");
  const description = `s3://${bucket}/${prefixText}${query === "" ? "" : `?${query}`}`;
  return { kind: "s3", bucket, prefix, endpoint, region, description };
}

function checkEndpoint(endpoint: string, text: string): void {
  let parsed: URL;
  try {
    parsed = new URL(endpoint);
  } catch {
    throw invalidArgument(`invalid vault URL ${JSON.stringify(text)}: endpoint ${JSON.stringify(endpoint)} is not a URL`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw invalidArgument(`invalid vault URL ${JSON.stringify(text)}: endpoint must be http:// or https://`);
  }
  if (parsed.username !== "" || parsed.password !== "") throw invalidArgument(`invalid vault URL: no user or password in the endpoint`);
}

function parseApplianceUrl(url: URL, text: string): ApplianceVaultTarget {
  if (url.hostname === "" || url.port === "") {
    throw invalidArgument(`invalid vault URL ${JSON.stringify(text)}: expected snaplog://HOST:PORT (the peer's --api address)`);
  }
  if ((url.pathname !== "" && url.pathname !== "/") || url.search !== "") {
    throw invalidArgument(`invalid vault URL ${JSON.stringify(text)}: a snaplog URL is only snaplog://HOST:PORT`);
  }
  // snaplogs://: HTTPS, the peer's certificate checked against the system's CAs (and NODE_EXTRA_CA_CERTS).
  const secure = url.protocol === "snaplogs:";
  return { kind: "appliance", baseUrl: `${secure ? "https" : "http"}://${url.host}`, description: `${url.protocol}//${url.host}` };
}
