/**
 * Operations over the running server's unix socket: what the CLI uses when a server owns
 * the store (SPEC §2 "One owner"). Error bodies turn back into SnaplogError with the same
 * code, message and hint, so the CLI reports them exactly as it would in direct mode.
 *
 * Plain answers are one JSON document. Long answers are NDJSON (see ndjson.ts): the log and
 * diff yield their lines as they arrive; compact, restore and scrub call onProgress for each
 * progress line and return the result line. A final error line is thrown as SnaplogError.
 */
import http from "node:http";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { CODEC_DEFAULT, StreamReader, type StreamPoint, type StreamSink } from "../stream/index.js";
import { exportResultOf } from "../store/archive/export-stream.js";
import type {
  RelationInfo,
  ReplicateRequest,
  ArchiveRequest,
  ArchiveResult,
  VaultAddRequest,
  VaultChainInfo,
  VaultInfo,
  VaultRestoreRequest,
  VaultRestoreResult,
  ExportRequest,
  ExportResult,
  ImportRequest,
  ImportResult,
  CompactRequest,
  CompactResult,
  CreateDiskRequest,
  CreateSnapshotRequest,
  DeleteSnapshotResult,
  DiffRequest,
  DiffRun,
  DiskDetail,
  DiskInfo,
  DiskPolicy,
  LogEntry,
  LogRequest,
  Operations,
  EventsRequest,
  PolicyUpdate,
  PruneRequest,
  PruneResult,
  StoreEvent,
  ProgressCallback,
  RestoreRequest,
  RestoreResult,
  ScrubRequest,
  ScrubResult,
  MirrorResyncResult,
  MirrorStatus,
  SnapshotInfo,
} from "../store/operations/index.js";
import { apiSocketPath } from "../store/paths.js";
import { ErrorCodes, SnaplogError } from "../util/errors.js";
import type { ApplianceStatus } from "./appliance-status.js";
import { ndjsonContentType } from "./ndjson.js";
import { readNdjson } from "./ndjson-reader.js";
import { probeSocket, socketPathBytesMax } from "./socket.js";
import { isErrorCode } from "./http-status.js";

const requestTimeoutMs = 10 * 60 * 1000;
/** A stream may run for hours; it fails only when nothing arrives for this long while we wait for it. */
const streamIdleTimeoutMs = 10 * 60 * 1000;
const responseBytesMax = 64 * 1024 * 1024;
/** The longest NDJSON line: a log row with data is at most 256 blocks of 64 KiB, as base64. */
const lineBytesMax = 64 * 1024 * 1024;

type Body = Record<string, unknown>;

export class ApiClient implements Operations {
  constructor(readonly socketPath: string) {}

  /** A client when a server answers on the store's socket; undefined when no socket or nobody answers. */
  static async connectIfRunning(storePath: string): Promise<ApiClient | undefined> {
    return ApiClient.connectToSocketIfRunning(apiSocketPath(storePath));
  }

  static async connectToSocketIfRunning(socketPath: string): Promise<ApiClient | undefined> {
    if (Buffer.byteLength(socketPath) > socketPathBytesMax) return undefined;
    return (await probeSocket(socketPath)) ? new ApiClient(socketPath) : undefined;
  }

  /** A new bearer token for the running server's TCP faces, in force at once. */
  rotateToken(): Promise<{ path: string; token: string }> {
    return this.request("POST", "/v1/token/rotate");
  }

  listDisks(): Promise<DiskInfo[]> {
    return this.request("GET", "/v1/disks");
  }

  showDisk(name: string): Promise<DiskDetail> {
    return this.request("GET", diskPath(name));
  }

  createDisk(request: CreateDiskRequest): Promise<DiskInfo> {
    return this.request("POST", "/v1/disks", request);
  }

  async deleteDisk(name: string): Promise<void> {
    await this.request("DELETE", diskPath(name));
  }

  createSnapshot({ disk, ...body }: CreateSnapshotRequest): Promise<SnapshotInfo> {
    return this.request("POST", diskPath(disk, "snapshots"), body);
  }

  listSnapshots(disk: string): Promise<SnapshotInfo[]> {
    return this.request("GET", diskPath(disk, "snapshots"));
  }

  deleteSnapshot(disk: string, name: string): Promise<DeleteSnapshotResult> {
    return this.request("DELETE", diskPath(disk, `snapshots/${encodeURIComponent(name)}`));
  }

  showPolicy(disk: string): Promise<DiskPolicy> {
    return this.request("GET", diskPath(disk, "policy"));
  }

  setPolicy({ disk, ...body }: PolicyUpdate): Promise<DiskPolicy> {
    return this.request("PATCH", diskPath(disk, "policy"), body);
  }

  prunePolicy({ disk, ...body }: PruneRequest): Promise<PruneResult> {
    return this.request("POST", diskPath(disk, "policy/prune"), body);
  }

  async *readEvents({ disk, since, follow }: EventsRequest): AsyncGenerator<StoreEvent> {
    yield* this.items<StoreEvent>(`/v1/events${queryString({ disk, since, follow: follow === true ? "1" : undefined })}`);
  }

  promoteDisk(disk: string): Promise<{ disk: string; promotedAt: string }> {
    return this.request("POST", diskPath(disk, "promote"));
  }

  replicate({ disk, ...body }: ReplicateRequest): Promise<RelationInfo> {
    return this.request("POST", diskPath(disk, "replicate"), { ...body });
  }

  async stopReplication(disk: string): Promise<void> {
    await this.request("DELETE", diskPath(disk, "replicate"));
  }

  listRelations(): Promise<RelationInfo[]> {
    return this.request("GET", "/v1/replication");
  }

  addVault(request: VaultAddRequest): Promise<VaultInfo> {
    return this.request("POST", "/v1/vaults", { ...request });
  }

  listVaults(): Promise<VaultInfo[]> {
    return this.request("GET", "/v1/vaults");
  }

  async removeVault(name: string): Promise<void> {
    await this.request("DELETE", `/v1/vaults/${encodeURIComponent(name)}`);
  }

  listVaultChains(vault: string, disk?: string): Promise<VaultChainInfo[]> {
    const query = disk === undefined ? "" : `?disk=${encodeURIComponent(disk)}`;
    return this.request("GET", `/v1/vaults/${encodeURIComponent(vault)}/chains${query}`);
  }

  archive({ disk, ...body }: ArchiveRequest, onProgress?: ProgressCallback): Promise<ArchiveResult> {
    return this.progressRequest("POST", diskPath(disk, "archive"), body, onProgress);
  }

  restoreFromVault({ vault, ...body }: VaultRestoreRequest, onProgress?: ProgressCallback): Promise<VaultRestoreResult> {
    return this.progressRequest("POST", `/v1/vaults/${encodeURIComponent(vault)}/restore`, body, onProgress);
  }

  compact({ disk, ...body }: CompactRequest, onProgress?: ProgressCallback): Promise<CompactResult> {
    return this.progressRequest("POST", diskPath(disk, "compact"), body, onProgress);
  }

  restore({ disk, ...body }: RestoreRequest, onProgress?: ProgressCallback): Promise<RestoreResult> {
    return this.progressRequest("POST", diskPath(disk, "restore"), body, onProgress);
  }

  mirrorStatus(disk: string): Promise<MirrorStatus> {
    return this.request("GET", diskPath(disk, "mirror"));
  }

  resyncMirror(disk: string, onProgress?: ProgressCallback): Promise<MirrorResyncResult> {
    return this.progressRequest("POST", diskPath(disk, "mirror/resync"), {}, onProgress);
  }

  scrub(request: ScrubRequest, onProgress?: ProgressCallback): Promise<ScrubResult> {
    return this.progressRequest("POST", "/v1/scrub", { ...request }, onProgress);
  }

  async *readLog({ disk, data, ...bounds }: LogRequest): AsyncGenerator<LogEntry> {
    const query = queryString({ ...bounds, data: data === true ? "true" : undefined });
    yield* this.items<LogEntry>(`${diskPath(disk, "log")}${query}`);
  }

  async *diff({ disk, from, to }: DiffRequest): AsyncGenerator<DiffRun> {
    yield* this.items<DiffRun>(`${diskPath(disk, "diff")}${queryString({ from, to })}`);
  }

  /** The running appliance's status: the store's, and what it serves. */
  status(): Promise<ApplianceStatus> {
    return this.request("GET", "/v1/status");
  }

  /**
   * The server sends the stream; it goes to `sink` and, on the way, through a StreamReader: the
   * result (counts, LSNs, SHA-256) is what the stream itself proves, and a stream cut short by a
   * failure on the server is refused here too.
   */
  async exportStream(request: ExportRequest, sink: StreamSink, onProgress?: ProgressCallback): Promise<ExportResult> {
    const query = new URLSearchParams();
    for (const key of ["to", "from", "order", "codec"] as const) if (request[key] !== undefined) query.set(key, String(request[key]));
    if (request.compact !== undefined) query.set("compact", String(request.compact));
    const response = await this.send("GET", `${diskPath(request.disk, "export")}?${query}`, undefined, "application/octet-stream");
    const statusCode = response.statusCode ?? 0;
    if (statusCode !== 200 || !String(response.headers["content-type"] ?? "").startsWith("application/octet-stream")) {
      this.decode<unknown>(statusCode, await this.readBody(response));
      throw new SnaplogError(ErrorCodes.INTERNAL, `the server answered HTTP ${statusCode} where a stream was expected`);
    }
    response.socket?.setTimeout(0);
    let bytes = 0;
    async function* tee(): AsyncGenerator<Buffer> {
      for await (const chunk of response as AsyncIterable<Buffer>) {
        await sink(chunk);
        bytes += chunk.length;
        yield chunk;
      }
    }
    const reader = new StreamReader(this.withStreamFailures(tee()));
    const header = await reader.readHeader();
    const lsnStart = header.from?.lsn ?? 0;
    const cuts: StreamPoint[] = [];
    for await (const item of reader.items()) {
      if (item.type === "cut") cuts.push(item.cut);
      else if (item.runs.length > 0) onProgress?.(item.runs[item.runs.length - 1].lsn - lsnStart, header.to.lsn - lsnStart);
    }
    if (reader.trailer === undefined) throw this.failure("the stream ended without its trailer");
    return exportResultOf(request.disk, request.codec ?? CODEC_DEFAULT, header, reader.trailer, cuts, bytes);
  }

  /** The stream is the request body, sent as it is read (backpressure from the server's spool). */
  async importStream(request: ImportRequest, source: AsyncIterable<Buffer | Uint8Array | string>): Promise<ImportResult> {
    const query = request.force === true ? "?force=true" : "";
    const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const outgoing = http.request(
        {
          socketPath: this.socketPath,
          method: "POST",
          path: `${diskPath(request.disk, "import")}${query}`,
          headers: { accept: "application/json", "content-type": "application/octet-stream" },
        },
        resolve,
      );
      outgoing.on("error", (error) => reject(error instanceof SnaplogError ? error : this.failure(error.message, error)));
      pipeline(Readable.from(source), outgoing).catch((error: unknown) =>
        reject(error instanceof SnaplogError ? error : this.failure((error as Error).message, error)),
      );
    });
    return this.decode<ImportResult>(response.statusCode ?? 0, await this.readBody(response));
  }

  private async *withStreamFailures(chunks: AsyncGenerator<Buffer>): AsyncGenerator<Buffer> {
    try {
      yield* chunks;
    } catch (error) {
      throw error instanceof SnaplogError ? error : this.failure((error as Error).message, error);
    }
  }

  private async request<T>(method: string, path: string, body?: Body | CreateDiskRequest): Promise<T> {
    const response = await this.send(method, path, body, "application/json");
    return this.decode<T>(response.statusCode ?? 0, await this.readBody(response));
  }

  /** The lines of an NDJSON answer as they arrive; a final {error} line is thrown. */
  private async *items<T>(path: string): AsyncGenerator<T> {
    for await (const line of this.lines(await this.openStream("GET", path))) {
      const error = errorOfLine(line);
      if (error !== undefined) throw error;
      yield line as T;
    }
  }

  /** Progress lines go to onProgress; the {result} line is the answer; an {error} line is thrown. */
  private async progressRequest<T>(method: string, path: string, body: Body, onProgress: ProgressCallback | undefined): Promise<T> {
    for await (const line of this.lines(await this.openStream(method, path, body))) {
      const error = errorOfLine(line);
      if (error !== undefined) throw error;
      const { progress, result } = line as { progress?: { done: number; total: number }; result?: T };
      if (result !== undefined) return result;
      if (progress !== undefined) onProgress?.(progress.done, progress.total);
      else throw new SnaplogError(ErrorCodes.INTERNAL, "the server sent a line that is neither progress, result nor error");
    }
    throw this.failure("the answer ended without a result");
  }

  /** Sends a request that answers NDJSON; resolves once the answer's headers are in, and throws an error answer. */
  private async openStream(method: string, path: string, body?: Body): Promise<http.IncomingMessage> {
    const response = await this.send(method, path, body, ndjsonContentType);
    const statusCode = response.statusCode ?? 0;
    const contentType = String(response.headers["content-type"] ?? "");
    if (statusCode >= 200 && statusCode < 300 && contentType.startsWith(ndjsonContentType)) return response;
    this.decode<unknown>(statusCode, await this.readBody(response));
    throw new SnaplogError(ErrorCodes.INTERNAL, `the server answered HTTP ${statusCode} (${contentType}) where a stream was expected`);
  }

  private lines(response: http.IncomingMessage): AsyncGenerator<unknown> {
    // From here on, only the stream's own idle timeout applies: a consumer that reads slowly is not the server being silent.
    response.socket?.setTimeout(0);
    return this.withFailures(
      readNdjson(response, {
        idleMs: streamIdleTimeoutMs,
        lineBytesMax,
        idleError: () => this.failure(`no data from the server in ${streamIdleTimeoutMs / 1000}s`),
      }),
    );
  }

  /** Socket errors in the middle of a stream (the server went away) become CLOSED, as for plain requests. */
  private async *withFailures(lines: AsyncGenerator<unknown>): AsyncGenerator<unknown> {
    try {
      yield* lines;
    } catch (error) {
      throw error instanceof SnaplogError ? error : this.failure((error as Error).message, error);
    }
  }

  /** Resolves with the response once its headers are in. */
  private send(method: string, path: string, body: unknown, accept: string): Promise<http.IncomingMessage> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const request = http.request(
        {
          socketPath: this.socketPath,
          method,
          path,
          timeout: requestTimeoutMs,
          headers: {
            accept,
            ...(payload === undefined ? {} : { "content-type": "application/json", "content-length": payload.length }),
          },
        },
        resolve,
      );
      request.on("timeout", () => request.destroy(this.failure(`no answer from the server in ${requestTimeoutMs / 1000}s`)));
      request.on("error", (error) => reject(error instanceof SnaplogError ? error : this.failure(error.message, error)));
      request.end(payload);
    });
  }

  private readBody(response: http.IncomingMessage): Promise<string> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let receivedBytes = 0;
      response.on("data", (chunk: Buffer) => {
        receivedBytes += chunk.length;
        if (receivedBytes > responseBytesMax) {
          response.destroy(this.failure(`response from the server exceeds ${responseBytesMax} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      response.on("error", (error) => reject(error instanceof SnaplogError ? error : this.failure(error.message, error)));
      response.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    });
  }

  private decode<T>(statusCode: number, text: string): T {
    if (statusCode === 204) return undefined as T;
    let parsed: unknown;
    try {
      parsed = text.length === 0 ? undefined : JSON.parse(text);
    } catch {
      throw new SnaplogError(ErrorCodes.INTERNAL, `the server sent invalid JSON (HTTP ${statusCode})`);
    }
    if (statusCode >= 200 && statusCode < 300) return parsed as T;
    throw errorOfBody(parsed) ?? new SnaplogError(ErrorCodes.INTERNAL, `the server answered HTTP ${statusCode}`);
  }

  private failure(message: string, cause?: unknown): SnaplogError {
    return new SnaplogError(ErrorCodes.CLOSED, `server at ${this.socketPath}: ${message}`, {
      cause,
      path: this.socketPath,
      hint: "check that snaplog serve is still running",
    });
  }
}

function diskPath(disk: string, rest?: string): string {
  const base = `/v1/disks/${encodeURIComponent(disk)}`;
  return rest === undefined ? base : `${base}/${rest}`;
}

function queryString(values: Record<string, string | undefined>): string {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(values)) if (value !== undefined) query.set(key, value);
  const text = query.toString();
  return text.length === 0 ? "" : `?${text}`;
}

/** The SnaplogError an `{ error: { code, message, hint? } }` body stands for; undefined for other bodies. */
function errorOfBody(parsed: unknown): SnaplogError | undefined {
  const error = (parsed as { error?: { code?: unknown; message?: unknown; hint?: unknown } } | undefined)?.error;
  if (typeof error !== "object" || error === null) return undefined;
  const code = isErrorCode(error.code) ? error.code : ErrorCodes.INTERNAL;
  const message = typeof error.message === "string" ? error.message : "the server reported an error without a message";
  const hint = typeof error.hint === "string" ? error.hint : undefined;
  return new SnaplogError(code, message, { hint });
}

function errorOfLine(line: unknown): SnaplogError | undefined {
  return typeof line === "object" && line !== null && "error" in line ? errorOfBody(line) : undefined;
}
