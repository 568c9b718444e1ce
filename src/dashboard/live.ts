/**
 * What the page knows of the appliance, kept current without a reload: the status (refreshed
 * every few seconds and after every event), the event log (followed as a stream) and the
 * charts' samples (followed as a stream). Components read it with useLive() and re-render on
 * each change. A stream that breaks is reopened after a pause, and the page says so meanwhile.
 */
import { useEffect, useState } from "preact/hooks";
import { call, readLines } from "./api.js";
import type { ApplianceStatus, SeriesSample, StoreEvent } from "./types.js";

const EVENTS_KEPT = 500;
const SAMPLES_KEPT = 1800;
const STATUS_EVERY_MS = 3000;
const RECONNECT_MS = 2000;

export interface LiveState {
  status: ApplianceStatus | null;
  events: StoreEvent[];
  samples: SeriesSample[];
  /** Goes up with every event: views that fetch their own details fetch again. */
  changes: number;
  /** Why the page is not live now, or null. */
  problem: string | null;
}

const state: LiveState = { status: null, events: [], samples: [], changes: 0, problem: null };
const listeners = new Set<() => void>();
let started = false;

function changed(): void {
  for (const listener of listeners) listener();
}

export function useLive(): LiveState {
  const [, setTick] = useState(0);
  useEffect(() => {
    const listener = () => setTick((tick) => tick + 1);
    listeners.add(listener);
    return () => void listeners.delete(listener);
  }, []);
  return state;
}

let statusReading: Promise<void> | null = null;
let statusAgain = false;

/** Reads the status now (after an action, so the page shows its effect at once); calls while one read runs share one more read after it. */
export function refreshStatus(): Promise<void> {
  if (statusReading !== null) {
    statusAgain = true;
    return statusReading;
  }
  statusReading = (async () => {
    do {
      statusAgain = false;
      await readStatus();
    } while (statusAgain);
    statusReading = null;
  })();
  return statusReading;
}

async function readStatus(): Promise<void> {
  try {
    state.status = await call<ApplianceStatus>("GET", "/v1/status");
    state.problem = null;
  } catch (error) {
    state.problem = `status: ${(error as Error).message}`;
  }
  state.changes++;
  changed();
}

export function startLive(): void {
  if (started) return;
  started = true;
  void refreshStatus();
  setInterval(() => void refreshStatus(), STATUS_EVERY_MS);
  const since = new Date(Date.now() - 7 * 86_400_000).toISOString();
  follow(`/v1/events?follow=1&since=${encodeURIComponent(since)}`, (line) => {
    const event = line as StoreEvent;
    if (state.events.length > 0 && event.seq <= state.events[state.events.length - 1].seq) return;
    state.events.push(event);
    if (state.events.length > EVENTS_KEPT) state.events.splice(0, state.events.length - EVENTS_KEPT);
    // What an event reports (a snapshot made or deleted, a policy's step) shows in the status too.
    void refreshStatus();
  });
  follow("/v1/dashboard/series?follow=1", (line) => {
    const sample = line as SeriesSample;
    if (state.samples.length > 0 && sample.t <= state.samples[state.samples.length - 1].t) return;
    state.samples.push(sample);
    if (state.samples.length > SAMPLES_KEPT) state.samples.splice(0, state.samples.length - SAMPLES_KEPT);
    changed();
  });
}

/** Follows an NDJSON stream for as long as the page is open, reopening it when it breaks. */
function follow(path: string, onLine: (line: unknown) => void): void {
  const open = async (): Promise<void> => {
    for (;;) {
      try {
        await readLines("GET", path, undefined, onLine);
        state.problem = "the live stream ended; reconnecting";
      } catch (error) {
        state.problem = `live updates stopped (${(error as Error).message}); reconnecting`;
      }
      changed();
      await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
    }
  };
  void open();
}
