/**
 * A sender's calls to a receiving appliance (snaplog://HOST:PORT/DISK), over its HTTP API with
 * the receiver's bearer token: hello, a batch (the stream as the request body, sent as it is
 * made), resync, snapshot deletes. The receiver's typed errors come back as SnaplogErrors with
 * their code; a receiver that cannot be reached is VAULT_UNREACHABLE-like CLOSED with the cause.
 */
import * as http from "node:http";
import * as https from "node:https";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { setTimeout as sleep } from "node:timers/promises";
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
/** A send cut off by the receiver: how long its answer (the reason) may still take to arrive. */
const ANSWER_AFTER_CLOSE_MS = 1000;

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

  /**
   * The batch goes through node:http, not fetch: fetch would wrap the body in a web stream, and
   * that adapter cost the sender 4-5 % of its CPU per shipped write (docs/replication.md).
   */
  async batch(body: Readable): Promise<ReplicaAck> {
    const url = new URL(`${this.target.baseUrl}/v1/replica/${encodeURIComponent(this.target.disk)}/batch`);
    const request = (url.protocol === "https:" ? https : http).request(url, {
      method: "POST",
      headers: { "content-type": "application/octet-stream", authorization: `Bearer ${this.token}`, accept: "application/json" },
    });
    request.setTimeout(BATCH_TIMEOUT_MS, () => request.destroy(new Error(`no answer for ${BATCH_TIMEOUT_MS / 60_000} min`)));
    const answered = new Promise<{ status: number; text: string }>((resolve, reject) => {
      request.once("response", (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.once("end", () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
        response.once("error", reject);
      });
      request.once("error", reject);
    });
    answered.catch(() => undefined);
    // A receiver may answer (a refusal) before the whole body is sent, and close: its answer counts then.
    const sent = pipeline(body, request);
    sent.catch(() => undefined);
    let answer: { status: number; text: string };
    try {
      answer = await Promise.race([sent.then(() => answered), answered]);
    } catch (sendError) {
      const early = await Promise.race([answered, sleep(ANSWER_AFTER_CLOSE_MS)]).catch(() => undefined);
      if (early === undefined) throw this.unreachable(sendError);
      answer = early;
    }
    // Answered before the whole batch was read: the rest is not wanted (an error, so the export stops).
    if (!body.readableEnded) body.destroy(new Error(`receiver ${this.target.baseUrl} answered before the batch was sent`));
    return this.decodeText<ReplicaAck>(answer.status, answer.text);
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
    options: { body: string; headers: Record<string, string>; timeoutMs: number },
  ): Promise<Response> {
    try {
      return await fetch(`${this.target.baseUrl}${path}`, {
        method,
        body: options.body,
        headers: { ...options.headers, authorization: `Bearer ${this.token}`, accept: "application/json" },
        signal: AbortSignal.timeout(options.timeoutMs),
      });
    } catch (error) {
      throw this.unreachable(error);
    }
  }

  private unreachable(error: unknown): SnaplogError {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const code = (error as { code?: string }).code;
    const why = cause?.code ?? cause?.message ?? code ?? (error instanceof Error ? error.message : String(error));
    return new SnaplogError(ErrorCodes.CLOSED, `receiver ${this.target.baseUrl} unreachable: ${why}`, { cause: error });
  }

  private async decode<T>(response: Response): Promise<T> {
    return this.decodeText<T>(response.status, await response.text());
  }

  private decodeText<T>(status: number, text: string): T {
    let parsed: unknown;
    try {
      parsed = text === "" ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (status >= 200 && status < 300) return parsed as T;
    const error = (parsed as { error?: { code?: string; message?: string; hint?: string } } | undefined)?.error;
    if (status === 401)
      throw new SnaplogError(ErrorCodes.INVALID_ARGUMENT, `receiver ${this.target.baseUrl} refused the token (HTTP 401)`, {
        hint: "copy the receiver's STORE/api.token again",
      });
    const code = (Object.values(ErrorCodes) as string[]).includes(error?.code ?? "") ? (error?.code as ErrorCode) : ErrorCodes.INTERNAL;
    throw new SnaplogError(code, `receiver ${this.target.baseUrl}: ${error?.message ?? `HTTP ${status}`}`, { hint: error?.hint });
  }
}
