/**
 * The vaults a store knows (`snaplog vault add|list|remove`): STORE/vaults.json maps a name to
 * a URL; a credentials file (s3) or a token (snaplog://) given at `vault add` is copied into
 * STORE/vault-secrets/, readable by the owner only, so the server that archives later has it.
 */
import { promises as fs } from "node:fs";
import * as path from "node:path";
import { ErrorCodes, fromSystemError, notFound, SnaplogError } from "../../util/errors.js";
import { readJsonFileIfExists, writeJsonFile } from "../../util/json-file.js";
import { openVault, parseVaultUrl, type Vault } from "../../vault/index.js";
import type { Catalog } from "../catalog.js";
import { checkName } from "../names.js";
import type { VaultAddRequest, VaultInfo } from "../operations/index.js";

export const VAULTS_FILE = "vaults.json";
export const VAULT_SECRETS_DIRECTORY = "vault-secrets";

interface VaultEntry {
  url: string;
  addedAt: string;
  /** File names in vault-secrets/. */
  credentialsFile?: string;
  tokenFile?: string;
}

type VaultsFile = Record<string, VaultEntry>;

async function readVaults(storePath: string): Promise<VaultsFile> {
  return (await readJsonFileIfExists<VaultsFile>(path.join(storePath, VAULTS_FILE))) ?? {};
}

export async function listVaults(catalog: Catalog): Promise<VaultInfo[]> {
  const vaults = await readVaults(catalog.path);
  return Object.entries(vaults)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, entry]) => infoOf(name, entry));
}

function infoOf(name: string, entry: VaultEntry): VaultInfo {
  return {
    name,
    url: parseVaultUrl(entry.url).description,
    kind: parseVaultUrl(entry.url).kind,
    credentials: entry.credentialsFile !== undefined,
    token: entry.tokenFile !== undefined,
    addedAt: entry.addedAt,
  };
}

/** Checks the URL and that the vault answers (init), then records it. Inside control. */
export async function addVault(catalog: Catalog, request: VaultAddRequest): Promise<VaultInfo> {
  checkName("vault", request.name);
  const target = parseVaultUrl(request.url);
  const vaults = await readVaults(catalog.path);
  if (vaults[request.name] !== undefined) {
    throw new SnaplogError(ErrorCodes.ALREADY_EXISTS, `a vault named ${request.name} exists already`, {
      hint: `remove it first: snaplog vault remove ${request.name}`,
    });
  }
  if (request.credentialsFile !== undefined && target.kind !== "s3")
    throw new SnaplogError(ErrorCodes.INVALID_ARGUMENT, "--credentials is for s3:// vaults");
  if (request.token !== undefined && target.kind !== "appliance")
    throw new SnaplogError(ErrorCodes.INVALID_ARGUMENT, "a token is for snaplog:// vaults");
  const secrets = path.join(catalog.path, VAULT_SECRETS_DIRECTORY);
  const entry: VaultEntry = { url: request.url, addedAt: new Date(catalog.nowMs()).toISOString() };
  const credentials = request.credentialsFile === undefined ? undefined : await readSecret(request.credentialsFile);
  const vault = openVault(request.url, { credentialsFile: request.credentialsFile, token: request.token?.trim() });
  try {
    await vault.init();
  } finally {
    await vault.close();
  }
  await fs.mkdir(secrets, { recursive: true, mode: 0o700 });
  if (credentials !== undefined) {
    entry.credentialsFile = `${request.name}.credentials`;
    await writeSecret(path.join(secrets, entry.credentialsFile), credentials);
  }
  if (request.token !== undefined) {
    entry.tokenFile = `${request.name}.token`;
    await writeSecret(path.join(secrets, entry.tokenFile), Buffer.from(request.token.trim()));
  }
  await writeJsonFile(path.join(catalog.path, VAULTS_FILE), { ...vaults, [request.name]: entry });
  return infoOf(request.name, entry);
}

export async function removeVault(catalog: Catalog, name: string): Promise<void> {
  const vaults = await readVaults(catalog.path);
  const entry = vaults[name];
  if (entry === undefined) throw notFound(`no vault named ${name}`);
  const rest = { ...vaults };
  delete rest[name];
  await writeJsonFile(path.join(catalog.path, VAULTS_FILE), rest);
  for (const file of [entry.credentialsFile, entry.tokenFile]) {
    if (file !== undefined) await fs.rm(path.join(catalog.path, VAULT_SECRETS_DIRECTORY, file), { force: true });
  }
}

/** The store has a vault of this name. */
export async function isKnownVault(catalog: Catalog, name: string): Promise<boolean> {
  return Object.hasOwn(await readVaults(catalog.path), name);
}

/** The vault named `name`, opened with its secrets (the caller closes it). */
export async function openNamedVault(catalog: Catalog, name: string): Promise<Vault> {
  const entry = (await readVaults(catalog.path))[name];
  if (entry === undefined) throw notFound(`no vault named ${name}`, { hint: "add one: snaplog vault add NAME URL" });
  const secrets = path.join(catalog.path, VAULT_SECRETS_DIRECTORY);
  const token = entry.tokenFile === undefined ? undefined : (await fs.readFile(path.join(secrets, entry.tokenFile), "utf8")).trim();
  return openVault(entry.url, {
    credentialsFile: entry.credentialsFile === undefined ? undefined : path.join(secrets, entry.credentialsFile),
    token,
  });
}

async function readSecret(file: string): Promise<Buffer> {
  try {
    return await fs.readFile(file);
  } catch (error) {
    throw fromSystemError(error, { path: file });
  }
}

async function writeSecret(file: string, bytes: Buffer): Promise<void> {
  await fs.writeFile(file, bytes, { mode: 0o600 });
  await fs.chmod(file, 0o600);
}
