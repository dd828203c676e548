// Stores that keep decoded messages in process memory hand the same objects to
// every caller; freezing them is what keeps one caller's change from reaching
// the next (a copy per load would cost what keeping them saves).

/** Freezes `value` and everything reachable from it, in place; returns it. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
