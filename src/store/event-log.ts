/**
 * The store's event log (SPEC §4.4): every event, scheduled snapshot, retention delete, space
 * action and hook run, with its reason, in the order it happened. Persisted under STORE/events/
 * as NDJSON files of EVENTS_PER_FILE lines, bounded to the newest EVENTS_KEPT (the oldest file
 * goes when a new one would pass it), so it survives restarts and never grows without bound.
 *
 * Appends are queued and written together, then fdatasynced: an event is in the log once
 * `record` resolves. A torn last line after a crash is skipped when read. Readers get the
 * backlog (filtered by disk and time), and with `follow` every event recorded after it.
 */
import { EventEmitter, on } from "node:events";
import { promises as fs } from "node:fs";
import * as path from "node:path";
import { fromSystemError } from "../util/errors.js";
import type { StoreEvent } from "./operations/index.js";

export type { StoreEvent } from "./operations/index.js";

export const EVENTS_KEPT = 100_000;
export const EVENTS_PER_FILE = 10_000;
const EVENTS_DIRECTORY = "events";
const FILE_NAME = /^events-(\d{8})\.ndjson$/;

export type NewEvent = Omit<StoreEvent, "seq" | "time"> & { time?: string };

export interface EventQuery {
  disk?: string;
  /** Only events at or after this time (ms). */
  sinceMs?: number;
  /** After the backlog, every new event, until the reader stops. */
  follow?: boolean;
  /** Only events after this sequence number (`newestSeq` now: no backlog, only what comes next). */
  afterSeq?: number;
  signal?: AbortSignal;
}

function fileName(index: number): string {
  return `events-${String(index).padStart(8, "0")}.ndjson`;
}

export class EventLog {
  private readonly directory: string;
  private readonly live = new EventEmitter();
  private seqNext = 1;
  private fileIndex = 1;
  private linesInFile = 0;
  private pending: { line: string; done: () => void; failed: (error: unknown) => void }[] = [];
  private writing: Promise<void> | undefined;
  /** Events recorded since this log was opened, by type (the `snaplog_events_total` metric). */
  private readonly recordedByType = new Map<string, number>();

  private constructor(
    storePath: string,
    private readonly nowMs: () => number,
  ) {
    this.directory = path.join(storePath, EVENTS_DIRECTORY);
    this.live.setMaxListeners(0);
  }

  /** `nowMs`: the store's clock, the time of events recorded without one. */
  static async open(storePath: string, nowMs: () => number = Date.now): Promise<EventLog> {
    const log = new EventLog(storePath, nowMs);
    await fs.mkdir(log.directory, { recursive: true });
    const files = await log.files();
    if (files.length > 0) {
      log.fileIndex = files[files.length - 1];
      log.linesInFile = (await log.readLines(log.fileIndex)).length;
      log.seqNext = (await log.lastSeq(files)) + 1;
      await log.endTornLine();
    }
    return log;
  }

  /** A crash can leave the last line without its newline: end it, so the next append starts clean. */
  private async endTornLine(): Promise<void> {
    const file = path.join(this.directory, fileName(this.fileIndex));
    const text = await fs.readFile(file, "utf8");
    if (text.length > 0 && !text.endsWith("\n")) await fs.appendFile(file, "\n");
  }

  /** The sequence number of the newest event recorded (or being recorded); 0 when none. */
  get newestSeq(): number {
    return this.seqNext - 1;
  }

  /** Appends an event; resolves once it is durable. Never throws for the caller's sake: a failure is logged by the caller. */
  record(event: NewEvent): Promise<StoreEvent> {
    const full: StoreEvent = { seq: this.seqNext++, time: event.time ?? new Date(this.nowMs()).toISOString(), ...event } as StoreEvent;
    const line = `${JSON.stringify(full)}\n`;
    return new Promise((resolve, reject) => {
      this.pending.push({ line, done: () => resolve(full), failed: reject });
      this.writing ??= this.writePending();
    }).then(() => {
      this.recordedByType.set(full.type, (this.recordedByType.get(full.type) ?? 0) + 1);
      this.live.emit("event", full);
      return full;
    });
  }

  /** How many events of each type were recorded since the log was opened (scheduled snapshots, hook failures, degraded mirrors…). */
  recordedCounts(): ReadonlyMap<string, number> {
    return this.recordedByType;
  }

  /** The events matching `query`, oldest first; with `follow`, then every new one until aborted. */
  async *read(query: EventQuery = {}): AsyncGenerator<StoreEvent> {
    const matches = (event: StoreEvent) =>
      (query.disk === undefined || event.disk === query.disk) && (query.sinceMs === undefined || Date.parse(event.time) >= query.sinceMs);
    // Subscribed before the backlog is read: nothing recorded meanwhile is missed.
    const newer = query.follow === true ? on(this.live, "event", { signal: query.signal }) : undefined;
    let seqLast = query.afterSeq ?? 0;
    // Nothing in the files is after `afterSeq` when it is the newest: skip reading them.
    const backlog = query.afterSeq === undefined || query.afterSeq < this.newestSeq;
    try {
      for (const index of backlog ? await this.files() : []) {
        for (const line of await this.readLines(index)) {
          const event = parseEvent(line);
          if (event === undefined || event.seq <= seqLast) continue;
          seqLast = event.seq;
          if (matches(event)) yield event;
        }
      }
      if (newer === undefined) return;
      for await (const [event] of newer as AsyncIterable<[StoreEvent]>) {
        if (event.seq <= seqLast) continue;
        seqLast = event.seq;
        if (matches(event)) yield event;
      }
    } catch (error) {
      if (query.signal?.aborted === true && error instanceof Error && error.name === "AbortError") return;
      throw error;
    }
  }

  private async writePending(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, EVENTS_PER_FILE - this.linesInFile);
      try {
        const handle = await fs.open(path.join(this.directory, fileName(this.fileIndex)), "a");
        try {
          await handle.appendFile(batch.map((entry) => entry.line).join(""));
          await handle.datasync();
        } finally {
          await handle.close();
        }
        this.linesInFile += batch.length;
        if (this.linesInFile >= EVENTS_PER_FILE) await this.startFile();
        for (const entry of batch) entry.done();
      } catch (error) {
        const failure = fromSystemError(error, { path: path.join(this.directory, fileName(this.fileIndex)) });
        for (const entry of batch) entry.failed(failure);
      }
    }
    this.writing = undefined;
  }

  /** Starts the next file, and drops the oldest ones past EVENTS_KEPT. */
  private async startFile(): Promise<void> {
    this.fileIndex++;
    this.linesInFile = 0;
    const files = await this.files();
    const filesKept = Math.ceil(EVENTS_KEPT / EVENTS_PER_FILE);
    // The file just started is empty: the full ones before it hold the newest EVENTS_KEPT.
    for (const index of files.filter((index) => index <= this.fileIndex - filesKept - 1)) {
      await fs.rm(path.join(this.directory, fileName(index)), { force: true });
    }
  }

  private async files(): Promise<number[]> {
    const names = await fs.readdir(this.directory);
    const indexes: number[] = [];
    for (const name of names) {
      const match = FILE_NAME.exec(name);
      if (match !== null) indexes.push(Number(match[1]));
    }
    return indexes.sort((a, b) => a - b);
  }

  private async readLines(index: number): Promise<string[]> {
    let text: string;
    try {
      text = await fs.readFile(path.join(this.directory, fileName(index)), "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw fromSystemError(error, { path: path.join(this.directory, fileName(index)) });
    }
    return text.split("\n").filter((line) => line.length > 0);
  }

  /** The last sequence number in the files, newest first (0 when there is none). */
  private async lastSeq(files: number[]): Promise<number> {
    for (let position = files.length - 1; position >= 0; position--) {
      const lines = await this.readLines(files[position]);
      for (let line = lines.length - 1; line >= 0; line--) {
        const event = parseEvent(lines[line]);
        if (event !== undefined) return event.seq;
      }
    }
    return 0;
  }
}

/** A line as an event, or undefined for a torn or foreign line. */
function parseEvent(line: string): StoreEvent | undefined {
  try {
    const value = JSON.parse(line) as StoreEvent;
    return typeof value.seq === "number" && typeof value.type === "string" ? value : undefined;
  } catch {
    return undefined;
  }
}
