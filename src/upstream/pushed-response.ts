import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';

/** The upstream's reply body, handed over chunk by chunk as the socket delivers it. */
export interface UpstreamBody {
  /**
   * Hands every chunk to `onChunk`, in order; when it returns false, no more
   * come until resume(). Resolves once the body has ended and every chunk was
   * handed over (or cancel() was called); rejects when the body broke off.
   * Call once.
   */
  consume(onChunk: (chunk: Buffer) => boolean): Promise<void>;
  /** Lets chunks flow again after `onChunk` returned false. */
  resume(): void;
  /** The rest of the body is not wanted: the upstream call is aborted and consume() resolves. */
  cancel(): void;
}

export interface ResponseHead {
  status: number;
  headers: IncomingHttpHeaders;
}

/**
 * An undici dispatch handler: the response head as a promise, the body as
 * chunks pushed to one consumer with nothing in between. A model streams a
 * reply as hundreds of small events, and a Readable read through an async
 * iterator (what `request()` gives) costs more per event than relaying it
 * (bench/README.md, "Issue 16"). Chunks that arrive before the consumer, or
 * while it is paused, wait here, in order.
 */
export class PushedResponse implements Dispatcher.DispatchHandler, UpstreamBody {
  readonly head: Promise<ResponseHead>;
  #resolveHead!: (head: ResponseHead) => void;
  #rejectHead!: (error: Error) => void;
  #hasHead = false;
  #controller: Dispatcher.DispatchController | undefined;
  #abortReason: Error | undefined;
  readonly #signal: AbortSignal;
  readonly #onAbort = (): void => this.#abort(this.#signal.reason as Error);

  #onChunk: ((chunk: Buffer) => boolean) | undefined;
  #pending: Buffer[] = [];
  #isPaused = false;
  #hasEnded = false;
  #error: Error | undefined;
  #isSettled = false;
  #settle: { resolve: () => void; reject: (error: Error) => void } | undefined;

  constructor(signal: AbortSignal) {
    this.head = new Promise<ResponseHead>((resolve, reject) => {
      this.#resolveHead = resolve;
      this.#rejectHead = reject;
    });
    // Nobody may await the head (a failure before it is the caller's to see only through it).
    this.head.catch(() => undefined);
    this.#signal = signal;
    if (signal.aborted) this.#abortReason = signal.reason as Error;
    else signal.addEventListener('abort', this.#onAbort, { once: true });
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#abortReason !== undefined) controller.abort(this.#abortReason);
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (statusCode < 200) return; // 1xx: informational, the real head follows
    this.#hasHead = true;
    this.#resolveHead({ status: statusCode, headers });
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#onChunk === undefined || this.#isPaused || this.#pending.length > 0) {
      this.#pending.push(chunk);
      if (this.#onChunk !== undefined) controller.pause();
      return;
    }
    if (!this.#onChunk(chunk)) this.#pause();
  }

  onResponseEnd(): void {
    this.#hasEnded = true;
    this.#forgetSignal();
    this.#deliver();
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.#error = error;
    this.#forgetSignal();
    if (!this.#hasHead) this.#rejectHead(error);
    if (this.#settle !== undefined) this.#finish(error);
  }

  consume(onChunk: (chunk: Buffer) => boolean): Promise<void> {
    if (this.#isSettled) return Promise.resolve(); // cancelled before
    return new Promise<void>((resolve, reject) => {
      this.#settle = { resolve, reject };
      this.#onChunk = onChunk;
      if (this.#error !== undefined) this.#finish(this.#error);
      else this.#deliver();
    });
  }

  resume(): void {
    if (!this.#isPaused) return;
    this.#isPaused = false;
    this.#deliver();
  }

  cancel(): void {
    this.#finish(undefined);
    this.#abort(new Error('the reply is no longer wanted'));
  }

  /** Hands over what waited, then resolves at the end of the body or lets the socket flow again. */
  #deliver(): void {
    const onChunk = this.#onChunk;
    if (onChunk === undefined || this.#isSettled) return;
    while (this.#pending.length > 0) {
      const chunk = this.#pending.shift()!;
      if (!onChunk(chunk)) {
        this.#pause();
        return;
      }
      if (this.#isSettled) return;
    }
    if (this.#hasEnded) this.#finish(undefined);
    else this.#controller?.resume();
  }

  #pause(): void {
    this.#isPaused = true;
    this.#controller?.pause();
  }

  #finish(error: Error | undefined): void {
    if (this.#isSettled) return;
    this.#isSettled = true;
    this.#pending = [];
    if (error === undefined) this.#settle?.resolve();
    else this.#settle?.reject(error);
  }

  #abort(reason: Error): void {
    this.#forgetSignal();
    if (this.#controller === undefined) this.#abortReason ??= reason;
    else if (!this.#hasEnded && this.#error === undefined) this.#controller.abort(reason);
  }

  #forgetSignal(): void {
    this.#signal.removeEventListener('abort', this.#onAbort);
  }
}
