// The load generator: a fixed number of workers, each with one keep-alive
// connection of its own (an undici Pool with as many connections as workers),
// sending one request at a time and timing it from the call to the last byte.

import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { Pool, type Dispatcher } from 'undici';
import { isWholeReply } from './apis.js';
import type { RequestSpec } from './workload.js';

export interface LoadOptions {
  pool: Pool;
  concurrency: number;
  requests: number;
  /** The next request of worker `worker` (0 ≤ worker < concurrency). */
  next: (worker: number) => RequestSpec;
  stream: boolean;
  /** Sees every response's headers (contextd's window headers). */
  onHeaders?: (headers: Dispatcher.ResponseData['headers']) => void;
  /** Idle time after each response before the worker's next request (the run's wall time includes it). */
  pauseMs?: number;
}

export interface LoadResult {
  requests: number;
  concurrency: number;
  /** Call to last byte, per request, in completion order. */
  totalMs: Float64Array;
  /** Call to first body byte (the first SSE event when streaming). */
  firstByteMs: Float64Array;
  wallMs: number;
}

export function openPool(origin: string, connections: number): Pool {
  return new Pool(origin, { connections, pipelining: 1, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 60_000 });
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const totalMs = new Float64Array(options.requests);
  const firstByteMs = new Float64Array(options.requests);
  let issued = 0;
  let completed = 0;
  const worker = async (id: number): Promise<void> => {
    while (issued < options.requests) {
      issued += 1;
      const spec = options.next(id);
      const timing = await send(options, spec);
      totalMs[completed] = timing.totalMs;
      firstByteMs[completed] = timing.firstByteMs;
      completed += 1;
      if (options.pauseMs !== undefined && options.pauseMs > 0) await delay(options.pauseMs);
    }
  };
  const startedAt = performance.now();
  await Promise.all(Array.from({ length: options.concurrency }, (_, id) => worker(id)));
  return { requests: options.requests, concurrency: options.concurrency, totalMs, firstByteMs, wallMs: performance.now() - startedAt };
}

async function send(options: LoadOptions, spec: RequestSpec): Promise<{ totalMs: number; firstByteMs: number }> {
  const startedAt = performance.now();
  const response = await options.pool.request({ path: spec.path, method: 'POST', headers: spec.headers, body: spec.body });
  let firstByteAt = 0;
  let text = '';
  response.body.setEncoding('utf8');
  for await (const chunk of response.body as AsyncIterable<string>) {
    if (firstByteAt === 0) firstByteAt = performance.now();
    text += chunk;
  }
  const endedAt = performance.now();
  // Every reply is checked, cheaply: a fast error must never pass for a fast answer.
  if (response.statusCode !== 200 || !isWholeReply(spec.api, options.stream, text)) {
    throw new Error(`unexpected reply from ${spec.path}: ${response.statusCode} ${text.slice(0, 500)}`);
  }
  options.onHeaders?.(response.headers);
  return { totalMs: endedAt - startedAt, firstByteMs: (firstByteAt || endedAt) - startedAt };
}
