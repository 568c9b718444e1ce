/**
 * Goal: the slot allocator never hands out a slot twice, keeps writes sequential where it
 * can, and bounds the log's growth. Method: fast-check drives random allocations and
 * releases against a Set model with 8-slot segments; then two scenarios check the policy.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { SlotAllocator } from "../src/engine/space/slot-allocator.js";

const SLOTS_PER_SEGMENT = 8;

test("no slot is handed out twice; counts match the model", () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.boolean(), fc.nat()), { maxLength: 400 }), (steps) => {
      const allocator = new SlotAllocator(SLOTS_PER_SEGMENT);
      const used = new Set<number>();
      for (const [allocate, pick] of steps) {
        if (allocate || used.size === 0) {
          const slot = allocator.allocate();
          assert.ok(!used.has(slot), `slot ${slot} handed out twice`);
          used.add(slot);
        } else {
          const slot = [...used][pick % used.size];
          used.delete(slot);
          allocator.release(slot);
        }
        assert.equal(allocator.slotLimit - allocator.freeSlotCount, used.size);
      }
    }),
  );
});

test("a wholly free segment is refilled in ascending order before fresh space", () => {
  const allocator = new SlotAllocator(SLOTS_PER_SEGMENT);
  const first = Array.from({ length: 4 * SLOTS_PER_SEGMENT }, () => allocator.allocate());
  assert.deepEqual(
    first,
    Array.from({ length: 4 * SLOTS_PER_SEGMENT }, (_, index) => index),
  );
  for (let slot = SLOTS_PER_SEGMENT; slot < 2 * SLOTS_PER_SEGMENT; slot++) allocator.release(slot);
  const again = Array.from({ length: SLOTS_PER_SEGMENT }, () => allocator.allocate());
  assert.deepEqual(
    again,
    Array.from({ length: SLOTS_PER_SEGMENT }, (_, index) => SLOTS_PER_SEGMENT + index),
  );
  assert.equal(allocator.slotLimit, 4 * SLOTS_PER_SEGMENT);
});

test("scattered free slots are reused once the log reaches twice the live data", () => {
  const allocator = new SlotAllocator(SLOTS_PER_SEGMENT);
  const live = new Set<number>();
  for (let index = 0; index < 16 * SLOTS_PER_SEGMENT; index++) live.add(allocator.allocate());
  // Random overwrites: each write frees one scattered old slot.
  let seed = 7;
  for (let round = 0; round < 5000; round++) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    const victims = [...live];
    const victim = victims[seed % victims.length];
    live.delete(victim);
    allocator.release(victim);
    live.add(allocator.allocate());
  }
  assert.ok(allocator.slotLimit <= 2 * live.size + 2 * SLOTS_PER_SEGMENT, `log grew to ${allocator.slotLimit} slots for ${live.size} live`);
});
