import type { ServerResponse } from 'node:http';

export interface ClientDeparture {
  /** Aborts the upstream call when the client leaves. */
  signal: AbortSignal;
  /** The client now has all it waits for: leaving from here on is not a cancellation. */
  markClientHasAll(): void;
}

/**
 * Watches the client's connection. A client that leaves before it has its
 * whole reply cancels the upstream call (and nothing is stored); one that
 * leaves after (httpx-based clients close at `[DONE]`) has had its reply,
 * and only the rest of the upstream body, which it will never read, is dropped.
 */
export function watchClientDeparture(res: ServerResponse, onCancel: () => void): ClientDeparture {
  const abort = new AbortController();
  let hasAll = false;
  res.once('close', () => {
    if (res.writableFinished) return;
    if (!hasAll) onCancel();
    abort.abort();
  });
  return {
    signal: abort.signal,
    markClientHasAll: () => {
      hasAll = true;
    },
  };
}
