/**
 * A vault on another snaplog appliance (snaplog://HOST:PORT): the peer's TCP API, routes
 * /v1/vault/* (src/api/routes/vault-objects.ts), with its bearer token. The peer keeps the
 * objects under its STORE/vault/ with the same all-or-nothing rule as a directory vault, so a
 * put that fails or is cut leaves the key absent or at its previous value.
 *
 * Node's fetch (undici) only: the vault layer does not use src/api. Every request is
 * idempotent (a put sends the whole object), so network failures are retried a bounded number
 * of times, then reported as VAULT_UNREACHABLE; a refused token is VAULT_DENIED.
 */
import { ErrorCodes, invalidArgument, notFound, SnaplogError, type ErrorCode } from "../util/errors.js";
import type { OpenVaultOptions, Vault, VaultObjectInfo } from "./vault.js";
import { checkVaultKey, checkVaultPrefix } from "./vault-key.js";
import type { ApplianceVaultTarget } from "./vault-url.js";
import { networkProblem } from "./vault-errors.js";

/** The environment variable that holds the peer's token when no token is given. */
export const VAULT_TOKEN_ENVIRONMENT = "SNAPLOG_VAULT_TOKEN";
/** The header a HEAD answer carries the object's size in. */
export const VAULT_SIZE_HEADER = "x-snaplog-size-bytes";
const requestTimeoutMsDefault = 120_000;
const attemptsMax = 3;
const retryDelaysMs = [250, 1_000];
/** Objects per list answer. */
const listPageSize = 1_000;

const knownCodes: ReadonlySet<string> = new Set(Object.values(ErrorCodes));

interface ListAnswer {
  objects: VaultObjectInfo[];
  truncated: boolean;
}

export class ApplianceVault implements Vault {
  readonly description: string;
  private readonly token: string;
  private readonly timeoutMs: number;

  constructor(
    private readonly target: ApplianceVaultTarget,
    options: OpenVaultOptions = {},
  ) {
    this.description = target.description;
    const token = options.token ?? process.env[VAULT_TOKEN_ENVIRONMENT];
    if (token === undefined || token.trim() === "") {
      throw invalidArgument(`vault ${this.description} needs the peer's API token`, {
        hint: `give its token file (the peer's STORE/api.token) or set ${VAULT_TOKEN_ENVIRONMENT}`,
      });
    }
    this.token = token.trim();
    this.timeoutMs = options.fetchTimeoutMs ?? requestTimeoutMsDefault;
  }

  async init(): Promise<void> {
    await this.listPage("", undefined, 1);
  }

  async put(key: string, body: Buffer): Promise<void> {
    checkVaultKey(key);
    await this.request("PUT", `/v1/vault/objects/${key}`, `store ${key}`, { body, contentType: "application/octet-stream" });
  }

  async get(key: string): Promise<Buffer> {
    checkVaultKey(key);
    const response = await this.request("GET", `/v1/vault/objects/${key}`, `read ${key}`, { missingKey: key });
    return Buffer.from(await response.arrayBuffer());
  }

  async head(key: string): Promise<VaultObjectInfo | undefined> {
    checkVaultKey(key);
    const response = await this.request("HEAD", `/v1/vault/objects/${key}`, `stat ${key}`, { absentIsUndefined: true });
    if (response === undefined) return undefined;
    const sizeBytes = Number(response.headers.get(VAULT_SIZE_HEADER));
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0)
      throw this.failure(ErrorCodes.IO, `stat ${key}`, `no valid ${VAULT_SIZE_HEADER} header`);
    return { key, sizeBytes };
  }

  async *list(prefix: string): AsyncIterable<VaultObjectInfo> {
    checkVaultPrefix(prefix);
    let after: string | undefined;
    for (;;) {
      const page = await this.listPage(prefix, after, listPageSize);
      yield* page.objects;
      if (!page.truncated || page.objects.length === 0) return;
      after = page.objects[page.objects.length - 1].key;
    }
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (const key of keys) checkVaultKey(key);
    if (keys.length === 0) return;
    await this.request("POST", "/v1/vault/delete", "delete objects", { json: { keys } });
  }

  async sweepIncomplete(olderThanMs: number): Promise<number> {
    const response = await this.request("POST", "/v1/vault/sweep", "sweep unfinished puts", { json: { olderThanMs } });
    const { removed } = (await response.json()) as { removed: number };
    return removed;
  }

  async close(): Promise<void> {}

  private async listPage(prefix: string, after: string | undefined, limit: number): Promise<ListAnswer> {
    const query = new URLSearchParams({ prefix, limit: String(limit) });
    if (after !== undefined) query.set("after", after);
    const response = await this.request("GET", `/v1/vault/objects?${query.toString()}`, "list objects", {});
    return (await response.json()) as ListAnswer;
  }

  private request(
    method: string,
    pathAndQuery: string,
    what: string,
    options: RequestOptions & { absentIsUndefined: true },
  ): Promise<Response | undefined>;
  private request(method: string, pathAndQuery: string, what: string, options: RequestOptions): Promise<Response>;
  /** One request with bounded retries on network failures; any answer but 2xx becomes a SnaplogError. */
  private async request(method: string, pathAndQuery: string, what: string, options: RequestOptions): Promise<Response | undefined> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}` };
    let body: Buffer | string | undefined;
    if (options.body !== undefined) {
      headers["content-type"] = options.contentType ?? "application/octet-stream";
      body = options.body;
    } else if (options.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(options.json);
    }
    let response: Response | undefined;
    for (let attempt = 1; response === undefined; attempt += 1) {
      try {
        response = await fetch(`${this.target.baseUrl}${pathAndQuery}`, {
          method,
          headers,
          body,
          signal: AbortSignal.timeout(this.timeoutMs),
        });
      } catch (error) {
        const problem = networkProblem(error) ?? describeFailure(error);
        if (attempt >= attemptsMax) {
          throw new SnaplogError(ErrorCodes.VAULT_UNREACHABLE, `vault ${this.description} unreachable: ${problem}`, {
            cause: error,
            hint: "check that the peer runs 'snaplog serve --api HOST:PORT' and the network between us",
          });
        }
        await new Promise((resolve) => setTimeout(resolve, retryDelaysMs[attempt - 1]));
      }
    }
    if (response.ok) return response;
    if (response.status === 404 && options.absentIsUndefined === true) return undefined;
    throw await this.answerError(response, what, options.missingKey);
  }

  private async answerError(response: Response, what: string, missingKey: string | undefined): Promise<SnaplogError> {
    const text = await response.text().catch(() => "");
    let peer: { code?: string; message?: string; hint?: string } = {};
    try {
      peer = ((JSON.parse(text) as { error?: typeof peer }).error ?? {}) as typeof peer;
    } catch {
      // not our JSON error body (a proxy's page, an empty HEAD answer): the status speaks
    }
    const message = peer.message ?? `HTTP ${response.status}${text === "" ? "" : ` ${text.slice(0, 200)}`}`;
    if (response.status === 401) {
      return new SnaplogError(ErrorCodes.VAULT_DENIED, `vault ${this.description} refused the token: ${message}`, {
        hint: `use the token from the peer's STORE/api.token (token file or ${VAULT_TOKEN_ENVIRONMENT})`,
      });
    }
    if (missingKey !== undefined && response.status === 404 && peer.code === ErrorCodes.NOT_FOUND) {
      return notFound(`vault ${this.description} has no object ${missingKey}`);
    }
    if (peer.code !== undefined && knownCodes.has(peer.code) && peer.code !== ErrorCodes.INTERNAL) {
      return this.failure(peer.code as ErrorCode, what, message, peer.hint);
    }
    const code = response.status >= 502 && response.status <= 504 ? ErrorCodes.VAULT_UNREACHABLE : ErrorCodes.IO;
    return this.failure(code, what, message, peer.hint);
  }

  private failure(code: ErrorCode, what: string, message: string, hint?: string): SnaplogError {
    return new SnaplogError(code, `vault ${this.description}: cannot ${what}: ${message}`, { hint });
  }
}

/** fetch's "fetch failed" with the reason undici put in its cause ("bad port", ...). */
function describeFailure(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : undefined;
  return cause === undefined ? message : `${message}: ${cause}`;
}

interface RequestOptions {
  body?: Buffer;
  contentType?: string;
  json?: unknown;
  /** GET of an object: a NOT_FOUND answer names this key. */
  missingKey?: string;
  /** HEAD: 404 is an answer (undefined), not an error. */
  absentIsUndefined?: boolean;
}
