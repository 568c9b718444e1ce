/**
 * A sender's calls to a receiving appliance (snaplog://HOST:PORT/DISK), over its HTTP API with
 * the receiver's bearer token: hello, a batch (the stream as the request body, sent as it is
 * made), resync, snapshot deletes. The receiver's typed errors come back as SnaplogErrors with
 * their code; a receiver that cannot be reached is VAULT_UNREACHABLE-like CLOSED with the cause.
 */
import { Readable } from "node:stream";
import { ErrorCodes, invalidArgument, SnaplogError, type ErrorCode } from "../../util/errors.js";
import type { ReplicaAck, ReplicaHello, ReplicaState } from "../operations/index.js";

export interface ReplicaTarget {
  baseUrl: string;
  disk: string;
  /** snaplog://HOST:PORT/DISK, for messages. */
  url: string;
}

export function parseReplicaUrl(url: string): ReplicaTarget {
  // snaplogs://: HTTPS to a receiver serving with --tls-cert (its certificate checked against the system's CAs and NODE_EXTRA_CA_CERTS).
  const match = /^snaplog(s?):\/\/([^/]+):(\d+)\/([^/?#]+)$/.exec(url);
  if (match === null)
    throw invalidArgument(`replication target ${JSON.stringify(url)} is not snaplog://HOST:PORT/DISK (or snaplogs:// for TLS)`);
  return { baseUrl: `${match[1] === "s" ? "https" : "http"}://${match[2]}:${match[3]}`, disk: decodeURIComponent(match[4]), url };
}

const REQUEST_TIMEOUT_MS = 30_000;
/** A batch may take long to apply (a full first copy): only silence this long fails it. */
const BATCH_TIMEOUT_MS = 30 * 60_000;

export class ReplicaClient {
  constructor(
    readonly target: ReplicaTarget,
    private readonly token: string,
  ) {}

  hello(hello: Omit<ReplicaHello, "disk">): Promise<ReplicaState> {
    return this.json("POST", `/v1/replica/${encodeURIComponent(this.target.disk)}/hello`, { ...hello, disk: this.target.disk });
  }

  resync(source: ReplicaHello["source"], commonSnapshotId: string, sourceLsn: number): Promise<ReplicaState> {
    return this.json("POST", `/v1/replica/${encodeURIComponent(this.target.disk)}/resync`, { source, commonSnapshotId, sourceLsn });
  }

  deleteSnapshots(sourceDiskId: string, ids: string[]): Promise<string[]> {
    return this.json("POST", `/v1/replica/${encodeURIComponent(this.target.disk)}/delete-snapshots`, { sourceDiskId, ids });
  }

  async batch(body: Readable): Promise<ReplicaAck> {
    const response = await this.call("POST", `/v1/replica/${encodeURIComponent(this.target.disk)}/batch`, {
      body: Readable.toWeb(body) as ReadableStream,
      headers: { "content-type": "application/octet-stream" },
      duplex: "half",
      timeoutMs: BATCH_TIMEOUT_MS,
    });
    return this.decode<ReplicaAck>(response);
  }

  private async json<T>(method: string, path: string, body: unknown): Promise<T> {
    const response = await this.call(method, path, {
      body: JSON.stringify(body),
      headers: { "content-type": "application/json" },
      timeoutMs: REQUEST_TIMEOUT_MS,
    });
    return this.decode<T>(response);
  }

  private async call(
    method: string,
    path: string,
    options: { body: string | ReadableStream; headers: Record<string, string>; duplex?: "half"; timeoutMs: number },
  ): Promise<Response> {
    try {
      return await fetch(`${this.target.baseUrl}${path}`, {
        method,
        body: options.body,
        headers: { ...options.headers, authorization: `Bearer ${this.token}`, accept: "application/json" },
        signal: AbortSignal.timeout(options.timeoutMs),
        ...(options.duplex === undefined ? {} : { duplex: options.duplex }),
      } as RequestInit);
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error));
      throw new SnaplogError(ErrorCodes.CLOSED, `receiver ${this.target.baseUrl} unreachable: ${why}`, { cause: error });
    }
  }

  private async decode<T>(response: Response): Promise<T> {
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text === "" ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (response.ok) return parsed as T;
    const error = (parsed as { error?: { code?: string; message?: string; hint?: string } } | undefined)?.error;
    if (response.status === 401)
      throw new SnaplogError(ErrorCodes.INVALID_ARGUMENT, `receiver ${this.target.baseUrl} refused the token (HTTP 401)`, {
        hint: "copy the receiver's STORE/api.token again",
      });
    const code = (Object.values(ErrorCodes) as string[]).includes(error?.code ?? "") ? (error?.code as ErrorCode) : ErrorCodes.INTERNAL;
    throw new SnaplogError(code, `receiver ${this.target.baseUrl}: ${error?.message ?? `HTTP ${response.status}`}`, { hint: error?.hint });
  }
}
