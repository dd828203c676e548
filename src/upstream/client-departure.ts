import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';

/**
 * What undici takes as a request's `signal` besides an AbortSignal: an emitter
 * of 'abort' with an `aborted` flag (its documented alternative). One costs a
 * twentieth of an AbortController with its listener (0.2 against 4.1 µs a request,
 * bench/README "Third round"), and nearly every client stays to the end.
 */
export class DepartureSignal extends EventEmitter {
  aborted = false;

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.emit('abort');
  }
}

export interface ClientDeparture {
  /** Aborts the upstream call when the client leaves (once its departure has been judged). */
  signal: DepartureSignal;
  /** The client now has all it waits for: leaving from here on is not a cancellation. */
  markClientHasAll(): void;
  /**
   * Has a departure judged only after `catchUp` resolves: the reader of the relayed bytes
   * finishes with what the client was already sent (a compressed stream's terminal event is
   * decoded on the thread pool, and the client may have decoded it and left first).
   */
  catchUpBeforeJudging(catchUp: () => Promise<void>): void;
  /** Resolves once a departure has been judged (at once while the client is still there). */
  judged(): Promise<void>;
}

/**
 * Watches the client's connection. A client that leaves before it has its
 * whole reply cancels the upstream call (and nothing is stored); one that
 * leaves after (httpx-based clients close at `[DONE]`) has had its reply,
 * and only the rest of the upstream body, which it will never read, is dropped.
 */
export function watchClientDeparture(res: ServerResponse, onCancel: () => void): ClientDeparture {
  const signal = new DepartureSignal();
  let hasAll = false;
  let catchUp = (): Promise<void> => Promise.resolve();
  let judgement = Promise.resolve();
  res.once('close', () => {
    if (res.writableFinished) return;
    if (hasAll) {
      signal.abort();
      return;
    }
    judgement = catchUp()
      .catch(() => undefined)
      .then(() => {
        if (!hasAll) onCancel();
        signal.abort();
      });
  });
  return {
    signal,
    markClientHasAll: () => {
      hasAll = true;
    },
    catchUpBeforeJudging: (reader) => {
      catchUp = reader;
    },
    judged: () => judgement,
  };
}
