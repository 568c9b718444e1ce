/**
 * Operations over the running server's unix socket: what the CLI uses when a server owns
 * the store (SPEC §2 "One owner"). Error bodies turn back into SnaplogError with the same
 * code, message and hint, so the CLI reports them exactly as it would in direct mode.
 */
import http from "node:http";
import type {
  CreateDiskRequest,
  CreateSnapshotRequest,
  DiskDetail,
  DiskInfo,
  Operations,
  SnapshotInfo,
  StoreStatus,
} from "../store/operations.js";
import { apiSocketPath } from "../store/paths.js";
import { ErrorCodes, SnaplogError } from "../util/errors.js";
import { probeSocket, socketPathBytesMax } from "./socket.js";
import { isErrorCode } from "./status.js";

const requestTimeoutMs = 10 * 60 * 1000;
const responseBytesMax = 64 * 1024 * 1024;

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

  listDisks(): Promise<DiskInfo[]> {
    return this.request("GET", "/v1/disks");
  }

  showDisk(name: string): Promise<DiskDetail> {
    return this.request("GET", `/v1/disks/${encodeURIComponent(name)}`);
  }

  createDisk(request: CreateDiskRequest): Promise<DiskInfo> {
    return this.request("POST", "/v1/disks", request);
  }

  async deleteDisk(name: string): Promise<void> {
    await this.request("DELETE", `/v1/disks/${encodeURIComponent(name)}`);
  }

  createSnapshot({ disk, ...body }: CreateSnapshotRequest): Promise<SnapshotInfo> {
    return this.request("POST", `/v1/disks/${encodeURIComponent(disk)}/snapshots`, body);
  }

  listSnapshots(disk: string): Promise<SnapshotInfo[]> {
    return this.request("GET", `/v1/disks/${encodeURIComponent(disk)}/snapshots`);
  }

  status(): Promise<StoreStatus> {
    return this.request("GET", "/v1/status");
  }

  private request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise<T>((resolve, reject) => {
      const request = http.request(
        {
          socketPath: this.socketPath,
          method,
          path,
          timeout: requestTimeoutMs,
          headers: {
            accept: "application/json",
            ...(payload === undefined ? {} : { "content-type": "application/json", "content-length": payload.length }),
          },
        },
        (response) => {
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
          response.on("error", reject);
          response.on("end", () => {
            try {
              resolve(this.decode<T>(response.statusCode ?? 0, Buffer.concat(chunks).toString("utf8")));
            } catch (error) {
              reject(error);
            }
          });
        },
      );
      request.on("timeout", () => request.destroy(this.failure(`no answer from the server in ${requestTimeoutMs / 1000}s`)));
      request.on("error", (error) => reject(error instanceof SnaplogError ? error : this.failure(error.message, error)));
      request.end(payload);
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
    const error = (parsed as { error?: { code?: unknown; message?: unknown; hint?: unknown } } | undefined)?.error;
    const code = isErrorCode(error?.code) ? error.code : ErrorCodes.INTERNAL;
    const message = typeof error?.message === "string" ? error.message : `the server answered HTTP ${statusCode}`;
    const hint = typeof error?.hint === "string" ? error.hint : undefined;
    throw new SnaplogError(code, message, { hint });
  }

  private failure(message: string, cause?: unknown): SnaplogError {
    return new SnaplogError(ErrorCodes.CLOSED, `server at ${this.socketPath}: ${message}`, {
      cause,
      path: this.socketPath,
      hint: "check that snaplog serve is still running",
    });
  }
}
