/**
 * Event actions delivered (SPEC §4.3): for each event of SPEC's list on a disk whose policy
 * attaches actions to it, the actions are queued on the disk's queue and run there one at a
 * time, in order (events in log order, a disk's actions in the order they were attached).
 * Disks do not wait for each other. Nothing here is on the I/O path: the runner hands events
 * over from the log after they are recorded, and `dispatch` only queues.
 *
 * The actions are the policy's when the event is dispatched. A disk's queue holds at most
 * HookLimits.runsQueuedMax runs; past it a run is dropped, and that is a "hook-failed" event
 * (an action slower than its events cannot grow memory without bound). A queue goes when it
 * is empty.
 */
import { SerialQueue } from "../util/serial-queue.js";
import type { StoreEvent } from "../store/event-log.js";
import { POLICY_EVENTS, type EventHook } from "../store/operations/index.js";
import { runHook } from "./hook-actions.js";
import type { RunnerContext } from "./runner-context.js";

interface DiskQueue {
  readonly serial: SerialQueue;
  /** Runs queued or running. */
  runCount: number;
  /** Settles when the last run queued has. */
  tail: Promise<void>;
}

export class EventHooks {
  private readonly queues = new Map<string, DiskQueue>();

  constructor(private readonly context: RunnerContext) {}

  /** No action queued or running. */
  get idle(): boolean {
    return this.queues.size === 0;
  }

  /** Queues the actions attached to this event's type on its disk (none for other events). */
  dispatch(event: StoreEvent): void {
    if (event.disk === undefined || !(POLICY_EVENTS as readonly string[]).includes(event.type)) return;
    let hooks: EventHook[];
    try {
      hooks = this.context.store.policyState(event.disk).settings.hooks;
    } catch {
      return; // The disk is gone (or the store closing): nothing is attached to it any more.
    }
    for (const hook of hooks) if (hook.event === event.type) this.enqueue(event.disk, hook, event);
  }

  /** Waits for every queued run (after the runner's signal aborted, they end at once). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.queues.values()].map((queue) => queue.tail));
  }

  private enqueue(disk: string, hook: EventHook, event: StoreEvent): void {
    let queue = this.queues.get(disk);
    if (queue === undefined) {
      queue = { serial: new SerialQueue(), runCount: 0, tail: Promise.resolve() };
      this.queues.set(disk, queue);
    }
    if (queue.runCount >= this.context.limits.runsQueuedMax) {
      void this.context.record({
        type: "hook-failed",
        disk,
        snapshot: event.snapshot,
        reason: event.type,
        message: `${hook.event}=${hook.action} of disk ${disk} not run: ${queue.runCount} runs wait already (for event ${event.seq})`,
        details: { action: hook.action, triggerSeq: event.seq, dropped: true },
      });
      return;
    }
    const owner = queue;
    owner.runCount++;
    owner.tail = owner.serial
      .run(() => runHook(this.context, hook, event))
      .finally(() => {
        owner.runCount--;
        if (owner.runCount === 0 && this.queues.get(disk) === owner) this.queues.delete(disk);
      });
  }
}
