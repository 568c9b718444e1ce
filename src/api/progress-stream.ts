/**
 * Answers a long-running route (compact, restore, scrub) with its progress, as NDJSON:
 *
 *   {"progress":{"done":N,"total":N}}   zero or more, at most one per intervalMs
 *   {"result":{...}}  or  {"error":{"code":...,"message":...,"hint":...}}   exactly one, last
 *
 * Nothing is sent until there is something to say: an operation that fails before its first
 * progress line gets a normal JSON error with the mapped HTTP status, and one that finishes
 * quickly answers 200 with the result line alone. Once a line is out the status is fixed at
 * 200, so a later failure becomes the final error line. While the operation waits (queued
 * behind another compaction, say) the latest progress is repeated every heartbeatIntervalMs,
 * so the client can tell a slow server from a dead one.
 *
 * A client that goes away does not cancel the operation: it runs to its end, and only the
 * lines are dropped.
 */
import { PassThrough } from "node:stream";
import type { FastifyReply } from "fastify";
import type { ProgressCallback } from "../store/operations/index.js";
import { ndjsonContentType, ndjsonLine } from "./ndjson.js";
import { failureOf } from "./http-status.js";

/** How often progress lines go out; tests set intervalMs to 0 (every report is a line) or give a clock. */
export interface ProgressTiming {
  /** Least time between two progress lines: 100 ms, at most ten lines a second. */
  intervalMs: number;
  /** While no progress is reported, the latest is repeated this often. */
  heartbeatIntervalMs: number;
  /** The clock intervalMs is measured on (ms; performance.now by default). */
  now: () => number;
}

const progressTimingDefault: ProgressTiming = { intervalMs: 100, heartbeatIntervalMs: 15_000, now: () => performance.now() };

export async function sendProgressStream<T>(
  reply: FastifyReply,
  run: (onProgress: ProgressCallback) => Promise<T>,
  timing: Partial<ProgressTiming> = {},
): Promise<FastifyReply> {
  const lines = new ProgressLines(reply, { ...progressTimingDefault, ...timing });
  try {
    const result = await run(lines.onProgress);
    return lines.finish(ndjsonLine({ result }));
  } catch (error) {
    if (!lines.committed) throw error;
    const failure = failureOf(error);
    reply.log[failure.logLevel]({ err: error }, "request failed after its progress stream started");
    return lines.finish(ndjsonLine(failure.body));
  } finally {
    lines.stopHeartbeat();
  }
}

/** The lines of one answer; the body stream exists once the answer is committed. */
class ProgressLines {
  private body: PassThrough | undefined;
  private lastSentMs: number;
  private latest = { done: 0, total: 0 };
  private readonly heartbeat: NodeJS.Timeout;

  constructor(
    private readonly reply: FastifyReply,
    private readonly timing: ProgressTiming,
  ) {
    this.lastSentMs = timing.now();
    this.heartbeat = setInterval(() => this.sendLatest(), timing.heartbeatIntervalMs);
  }

  get committed(): boolean {
    return this.body !== undefined;
  }

  readonly onProgress: ProgressCallback = (done, total) => {
    this.latest = { done, total };
    if (this.timing.now() - this.lastSentMs >= this.timing.intervalMs) this.sendLatest();
  };

  /** Sends the last line and ends the answer. */
  finish(line: string): FastifyReply {
    if (this.body === undefined) return this.reply.code(200).header("content-type", ndjsonContentType).send(line);
    this.write(line);
    this.body.end();
    return this.reply;
  }

  stopHeartbeat(): void {
    clearInterval(this.heartbeat);
  }

  private sendLatest(): void {
    this.write(ndjsonLine({ progress: this.latest }));
  }

  private write(line: string): void {
    if (this.body === undefined) {
      this.body = new PassThrough();
      this.reply.code(200).header("content-type", ndjsonContentType).send(this.body);
    }
    // Fastify destroys the body when the client went away; the operation goes on regardless.
    if (!this.body.destroyed && !this.body.writableEnded) this.body.write(line);
    this.lastSentMs = this.timing.now();
  }
}
