/**
 * The policy runner: what makes a disk's policies happen in `snaplog serve` (SPEC §4: "applied
 * by the running server only"). The server starts it on its open Store and stops it before
 * closing the store; it works on the Store library in-process, never through the API.
 *
 *   schedules      one DiskSchedule per disk with a schedule (disk-schedule.ts): the catch-up
 *                  at start, a snapshot per slot, retention after each
 *   event actions  EventHooks (event-hooks.ts): the actions attached to each event, run one at
 *                  a time per disk, off the I/O path
 *
 * Both hang on the event log, which the runner follows: "policy-changed", "disk-created" and
 * "disk-deleted" make it read that disk's policy again (a schedule set, changed or stopped
 * takes effect at once, no restart), and every event is offered to the disk's actions.
 *
 * Delivery of actions is at most once: the runner follows only the events recorded after it
 * started, and keeps no cursor. An action has effects outside (a command, a webhook) that a
 * repeat would double, and an event of a previous run had no server to act on it then; so a
 * restart never re-runs actions for old events. (The catch-up snapshot at start is recorded
 * after the runner follows the log, so its actions run.)
 *
 * Every decision reads one Clock (clock.ts): tests drive months of schedule with a ManualClock.
 */
import type { StoreEvent } from "../store/event-log.js";
import { hasRetention } from "../store/policy/retention.js";
import { SystemClock, type Clock } from "./clock.js";
import { DiskSchedule } from "./disk-schedule.js";
import { EventHooks } from "./event-hooks.js";
import {
  errorMessage,
  HOOK_LIMITS_DEFAULT,
  type HookLimits,
  type RunnerContext,
  type RunnerLogger,
  type RunnerStore,
} from "./runner-context.js";

export interface PolicyRunnerOptions {
  /** Default: the system clock. */
  clock?: Clock;
  /** Default: silent. */
  logger?: RunnerLogger;
  /** Limits of event actions (defaults in runner-context.ts; tests lower the 60 s command limit). */
  limits?: Partial<HookLimits>;
}

/** Events after which the runner reads the disk's policy again. */
const POLICY_CHANGES = new Set(["policy-changed", "disk-created", "disk-deleted"]);

const silentLogger: RunnerLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };

export class PolicyRunner {
  private readonly context: RunnerContext;
  private readonly stopController = new AbortController();
  private readonly schedules = new Map<string, DiskSchedule>();
  private readonly hooks: EventHooks;
  private readonly following: Promise<void>;
  private readonly starting: Promise<void>;
  private startingDone = false;
  /** The last event the follower handled (for settled()). */
  private seqHandled: number;

  private constructor(store: RunnerStore, options: PolicyRunnerOptions) {
    const logger = options.logger ?? silentLogger;
    this.context = {
      store,
      clock: options.clock ?? new SystemClock(),
      logger,
      limits: { ...HOOK_LIMITS_DEFAULT, ...options.limits },
      signal: this.stopController.signal,
      record: async (event) => {
        await store.events.record(event).then(
          () => undefined,
          (error: unknown) => logger.error(`policy: could not record an event (${event.type}): ${errorMessage(error)}`),
        );
      },
    };
    this.hooks = new EventHooks(this.context);
    this.seqHandled = store.events.newestSeq;
    // Subscribed here, synchronously (an async generator runs to its first await on the first
    // next()), before any schedule runs: the catch-up snapshot's events are seen.
    this.following = this.follow(store.events.read({ follow: true, afterSeq: this.seqHandled, signal: this.stopController.signal }));
    this.starting = this.startAll().finally(() => {
      this.startingDone = true;
    });
  }

  /** Starts the policies of every disk of the store (and of disks made later). */
  static start(store: RunnerStore, options: PolicyRunnerOptions = {}): PolicyRunner {
    return new PolicyRunner(store, options);
  }

  /**
   * Stops: schedules end at their next step (a snapshot under way completes), commands are
   * killed, webhooks cancelled, queued actions dropped (logged). Resolves when all has ended.
   */
  async stop(): Promise<void> {
    this.stopController.abort();
    for (const schedule of this.schedules.values()) schedule.stop();
    await this.starting;
    for (const schedule of this.schedules.values()) schedule.stop();
    await Promise.allSettled([this.following, this.hooks.drain(), ...[...this.schedules.values()].map((schedule) => schedule.done)]);
  }

  /**
   * Resolves when nothing is under way: every event recorded so far handled, every schedule
   * asleep on the clock, no action queued or running. For tests, which move a ManualClock and
   * then wait for the runner to act on it; polled, so it is not for the server's own use.
   */
  async settled(): Promise<void> {
    let quietPolls = 0;
    while (quietPolls < 2) {
      await new Promise((resolve) => setTimeout(resolve, 1));
      const quiet =
        this.startingDone &&
        this.seqHandled >= this.context.store.events.newestSeq &&
        this.hooks.idle &&
        [...this.schedules.values()].every((schedule) => schedule.idle);
      quietPolls = quiet ? quietPolls + 1 : 0;
    }
  }

  /** The disks whose schedule runs now (for tests and status). */
  get scheduledDisks(): string[] {
    return [...this.schedules.keys()].sort();
  }

  private async startAll(): Promise<void> {
    let disks: string[];
    try {
      disks = (await this.context.store.listDisks()).map((disk) => disk.name);
    } catch (error) {
      this.context.logger.error(`policy: cannot list the disks: ${errorMessage(error)}`);
      return;
    }
    for (const disk of disks) {
      if (this.stopController.signal.aborted) return;
      if (this.schedules.has(disk)) continue; // A change came first and started it.
      const state = this.stateOf(disk);
      // Retention runs at start (SPEC §4.1), also on a disk whose schedule has been stopped.
      if (state !== undefined && (state.schedule !== undefined || hasRetention(state.settings))) this.startSchedule(disk, true);
    }
  }

  private async follow(events: AsyncIterable<StoreEvent>): Promise<void> {
    try {
      for await (const event of events) {
        this.seqHandled = event.seq;
        this.handle(event);
      }
    } catch (error) {
      if (!this.stopController.signal.aborted)
        this.context.logger.error(`policy: stopped following the event log, event actions no longer run: ${errorMessage(error)}`);
    }
  }

  private handle(event: StoreEvent): void {
    try {
      if (event.disk !== undefined && POLICY_CHANGES.has(event.type)) this.reconcile(event.disk);
      this.hooks.dispatch(event);
    } catch (error) {
      this.context.logger.error(`policy: event ${event.seq} (${event.type}) not handled: ${errorMessage(error)}`);
    }
  }

  /** The disk's policy changed, or the disk came or went: its schedule reads it again, or starts. */
  private reconcile(disk: string): void {
    if (this.stopController.signal.aborted) return;
    const running = this.schedules.get(disk);
    if (running !== undefined && !running.finished) {
      running.poke();
      return;
    }
    if (this.stateOf(disk)?.schedule !== undefined) this.startSchedule(disk, false);
  }

  private startSchedule(disk: string, pruneAtStart: boolean): void {
    const schedule = new DiskSchedule(this.context, disk, pruneAtStart);
    this.schedules.set(disk, schedule);
    void schedule.done.then(() => {
      if (this.schedules.get(disk) === schedule) this.schedules.delete(disk);
    });
  }

  private stateOf(disk: string): ReturnType<RunnerStore["policyState"]> | undefined {
    try {
      return this.context.store.policyState(disk);
    } catch {
      return undefined; // Gone meanwhile.
    }
  }
}
