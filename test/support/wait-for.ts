import { setTimeout as delay } from 'node:timers/promises';

export interface WaitForOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** What the test was waiting for; a function is evaluated at timeout so it can report the state it saw. */
  message?: string | (() => string);
}

/**
 * Polls `condition` until it returns true. A condition that throws counts as
 * "not yet" (so `expect(...)` can be used inside); the last error becomes the
 * timeout error's `cause`.
 */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  { timeoutMs = 5_000, intervalMs = 10, message = 'condition' }: WaitForOptions = {},
): Promise<void> {
  const deadlineMs = performance.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await condition()) return;
      lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    const remainingMs = deadlineMs - performance.now();
    if (remainingMs <= 0) {
      const text = typeof message === 'function' ? message() : message;
      throw new Error(`timed out after ${timeoutMs} ms waiting for: ${text}`, { cause: lastError });
    }
    await delay(Math.min(intervalMs, remainingMs));
  }
}
