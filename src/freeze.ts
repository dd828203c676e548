// Objects shared by every caller are frozen: the resolved config, and the
// messages stores keep decoded in process memory, which they hand to every
// caller; freezing them is what keeps one caller's change from reaching the
// next (a copy per load would cost what keeping them saves).
//
// A deep-frozen value's JSON never changes either, so it is kept beside the
// value (weakly) once known: a store that has just parsed a message from its
// JSON hands that text over, and the upstream body (upstream-body.ts) splices
// it in instead of serialising the message on the request path.

/** Objects deepFreeze froze with everything reachable from them: their JSON never changes. */
const deeplyFrozen = new WeakSet<object>();
const jsonOfFrozen = new WeakMap<object, string>();

/**
 * Freezes `value` and everything reachable from it, in place; returns it.
 * `json`, when the caller has it, is `JSON.stringify(value)` (the text `value`
 * was parsed from, when that is JSON.stringify's own output), kept for frozenJson.
 */
export function deepFreeze<T>(value: T, json?: string): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
    deeplyFrozen.add(value);
    if (json !== undefined) jsonOfFrozen.set(value, json);
  }
  return value;
}

/** Whether deepFreeze froze `value` and all it holds (an object frozen otherwise may hold mutable parts). */
export function isDeeplyFrozen(value: unknown): boolean {
  return typeof value === 'object' && value !== null && deeplyFrozen.has(value);
}

/**
 * `serialise(value)`, computed once for a deep-frozen value (kept beside it,
 * weakly, in `cache`) and every time for anything else: one cache per form a
 * value is serialised in (its JSON; the Responses API's items, responses-body.ts).
 */
export function serialisedOnce<T extends object>(value: T, serialise: (value: T) => string, cache: WeakMap<object, string>): string {
  // Only deep-frozen values keep one: one lookup on the common path.
  const known = cache.get(value);
  if (known !== undefined) return known;
  const text = serialise(value);
  if (isDeeplyFrozen(value)) cache.set(value, text);
  return text;
}

/** `JSON.stringify(value)`: computed once for a deep-frozen value (or known from its store, deepFreeze's `json`), every time for anything else. */
export function frozenJson(value: object): string {
  return serialisedOnce(value, JSON.stringify, jsonOfFrozen);
}
