/**
 * Goal: a replica's batches received side by side apply in LSN order (src/store/replication/
 * batch-order.ts): a batch waits for the one that ends where it starts, never for anything else,
 * and two that would wait for each other cannot. Method: tickets entered in every order.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { BatchOrder } from "../src/store/replication/batch-order.js";

/** Whether `promise` settles within a few turns of the event loop. */
async function settlesSoon(promise: Promise<void>): Promise<boolean> {
  let settled = false;
  void promise.then(() => (settled = true));
  for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve));
  return settled;
}

test("the follower waits for its predecessor whichever entered first; other disks and unrelated batches do not wait", async () => {
  for (const followerFirst of [false, true]) {
    const order = new BatchOrder();
    const follower = followerFirst ? order.enter("r1", 20, 30) : undefined;
    const predecessor = order.enter("r1", 10, 20);
    const second = follower ?? order.enter("r1", 20, 30);
    const elsewhere = order.enter("r2", 20, 30);
    const gap = order.enter("r1", 40, 50);
    assert.equal(await settlesSoon(predecessor.turn()), true, "the first batch goes at once");
    assert.equal(await settlesSoon(elsewhere.turn()), true, "another replica's batch does not wait");
    assert.equal(await settlesSoon(gap.turn()), true, "a batch nothing in flight leads to goes at once (to be refused there)");
    const waiting = second.turn();
    assert.equal(await settlesSoon(waiting), false, "the follower waits");
    predecessor.leave();
    assert.equal(await settlesSoon(waiting), true, "…until its predecessor leaves (applied or refused)");
  }
});

test("a chain of three: each waits for the one before; two batches that start and end at one LSN go in the order they came", async () => {
  const order = new BatchOrder();
  const third = order.enter("r1", 2, 3);
  const second = order.enter("r1", 1, 2);
  const first = order.enter("r1", 0, 1);
  const thirdTurn = third.turn();
  const secondTurn = second.turn();
  assert.equal(await settlesSoon(first.turn()), true);
  assert.equal(await settlesSoon(secondTurn), false);
  first.leave();
  assert.equal(await settlesSoon(secondTurn), true);
  assert.equal(await settlesSoon(thirdTurn), false);
  second.leave();
  assert.equal(await settlesSoon(thirdTurn), true);
  third.leave();

  const cutA = order.enter("r1", 5, 5);
  const cutB = order.enter("r1", 5, 5);
  assert.equal(await settlesSoon(cutA.turn()), true, "the earlier of two equal batches does not wait for the later");
  const bTurn = cutB.turn();
  assert.equal(await settlesSoon(bTurn), false, "the later waits for the earlier");
  cutA.leave();
  assert.equal(await settlesSoon(bTurn), true);
});
