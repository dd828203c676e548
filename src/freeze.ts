// Objects shared by every caller are frozen: the resolved config, and the
// messages stores keep decoded in process memory, which they hand to every
// caller; freezing them is what keeps one caller's change from reaching the
// next (a copy per load would cost what keeping them saves).

/** Objects deepFreeze froze with everything reachable from them: their JSON never changes. */
const deeplyFrozen = new WeakSet<object>();

/** Freezes `value` and everything reachable from it, in place; returns it. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
    deeplyFrozen.add(value);
  }
  return value;
}

/** Whether deepFreeze froze `value` and all it holds (an object frozen otherwise may hold mutable parts). */
export function isDeeplyFrozen(value: unknown): boolean {
  return typeof value === 'object' && value !== null && deeplyFrozen.has(value);
}
