/**
 * The object store under archives (SPEC §5.3): a flat namespace of keys, each holding one
 * immutable-by-convention object that is written whole and read whole. Three targets implement
 * it (directory-vault.ts, s3-vault.ts, appliance-vault.ts); test/vault-conformance.test.ts runs
 * one contract suite against each.
 *
 * Lifecycle: openVault(url) → init() (idempotent: makes the directory, checks the bucket or the
 * peer and its token) → put/get/head/list/delete in any order, concurrently → close().
 *
 * Errors are SnaplogError: INVALID_ARGUMENT for a bad key or URL, NOT_FOUND naming the key,
 * NO_SPACE when the target is full, VAULT_UNREACHABLE when the network or the endpoint fails
 * (after bounded retries), VAULT_DENIED when credentials or the token are refused, IO otherwise.
 */
export interface VaultObjectInfo {
  key: string;
  sizeBytes: number;
}

export interface Vault {
  /** The URL with any secret removed, for messages. */
  readonly description: string;
  /** Checks the target is reachable and usable (makes the directory / checks the bucket); clear error otherwise. Idempotent. */
  init(): Promise<void>;
  /**
   * Stores `body` under `key` all-or-nothing: after success get() returns exactly these bytes;
   * after a failure or a kill -9 the key is absent or holds its previous complete value — never
   * a partial object.
   */
  put(key: string, body: Buffer): Promise<void>;
  /** The whole object; SnaplogError NOT_FOUND naming the key when absent. */
  get(key: string): Promise<Buffer>;
  /** The object's size, or undefined when absent. */
  head(key: string): Promise<VaultObjectInfo | undefined>;
  /** Every complete object whose key starts with prefix, sorted by key (in-progress uploads and temp files never listed). */
  list(prefix: string): AsyncIterable<VaultObjectInfo>;
  /** Removes these keys; a key already absent is not an error. */
  delete(keys: readonly string[]): Promise<void>;
  /** Removes leftovers of interrupted puts (temp files, unfinished S3 multipart uploads) older than olderThanMs; returns how many. */
  sweepIncomplete(olderThanMs: number): Promise<number>;
  close(): Promise<void>;
}

export interface OpenVaultOptions {
  /** s3: an AWS shared-credentials file (default: the standard AWS environment variables and files). */
  credentialsFile?: string;
  /** snaplog: the peer's API bearer token (default: environment SNAPLOG_VAULT_TOKEN). */
  token?: string;
  /** s3 and snaplog: the limit of one HTTP request, in ms (default 120 000). */
  fetchTimeoutMs?: number;
}
