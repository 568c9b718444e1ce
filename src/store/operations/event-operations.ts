/** The event log (SPEC §4.4): what the policies and the server did and saw, oldest first. */

/** One entry of the log. `type` is an event of SPEC §4.3 or what the policies did. */
export interface StoreEvent {
  /** Store-wide, increasing: the order events happened in. */
  seq: number;
  /** When (ISO 8601). */
  time: string;
  type: string;
  disk?: string;
  snapshot?: string;
  lun?: number;
  lsn?: number;
  /** What made it happen: manual, scheduled, retention, space, a hook, ... */
  reason?: string;
  /** For people: one line. */
  message: string;
  /** The rest, by event type: an action and its exit status, bytes freed, ... */
  details?: Record<string, string | number | boolean | null>;
}

export interface EventsRequest {
  /** Only this disk's events. */
  disk?: string;
  /** Only events at or after this time (ISO 8601). */
  since?: string;
  /** After the backlog, every new event as it happens, until the reader stops. */
  follow?: boolean;
}

export interface EventOperations {
  /** The events, oldest first (streamed); with follow, never ends by itself: abort `signal`. */
  readEvents(request: EventsRequest, signal?: AbortSignal): AsyncIterable<StoreEvent>;
}
