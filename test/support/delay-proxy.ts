// A TCP proxy on loopback that delays every byte by a set time, each way, in
// order: a slow server (MongoDB behind a congested link, FerretDB under load)
// without touching the server. Bounded: a connection with more than
// MAX_IN_FLIGHT_BYTES on its way in one direction stops reading that side
// until they have gone out.

import { connect, createServer, type Server, type Socket } from 'node:net';

export interface DelayProxy {
  /** The port on 127.0.0.1 that clients connect to. */
  port: number;
  /** The delay each way, in ms; a change applies to bytes read from then on. */
  delayMs: number;
  close(): Promise<void>;
}

const MAX_IN_FLIGHT_BYTES = 4 * 1024 * 1024;

export async function startDelayProxy(target: { host?: string; port: number }, delayMs = 0): Promise<DelayProxy> {
  const sockets = new Set<Socket>();
  const proxy = { port: 0, delayMs, close: () => Promise.resolve() } as DelayProxy;
  const server: Server = createServer((client) => {
    const upstream = connect({ host: target.host ?? '127.0.0.1', port: target.port });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      // Either side going away takes the other with it.
      socket.once('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    relay(client, upstream, () => proxy.delayMs);
    relay(upstream, client, () => proxy.delayMs);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the delay proxy has no port');
  proxy.port = address.port;
  proxy.close = async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return proxy;
}

/**
 * Copies `from` to `to`, each chunk (and the end) `delayMs()` after it was
 * read, never before a chunk read earlier (the delay may shrink meanwhile).
 */
function relay(from: Socket, to: Socket, delayMs: () => number): void {
  const queue: { dueAtMs: number; chunk: Buffer | 'end' }[] = [];
  let inFlightBytes = 0;
  let timer: NodeJS.Timeout | undefined;
  const sendDue = (): void => {
    timer = undefined;
    while (queue.length > 0 && queue[0]!.dueAtMs <= performance.now()) {
      const { chunk } = queue.shift()!;
      if (to.destroyed) continue;
      if (chunk === 'end') {
        to.end();
        continue;
      }
      inFlightBytes -= chunk.length;
      to.write(chunk);
    }
    if (from.isPaused() && inFlightBytes <= MAX_IN_FLIGHT_BYTES) from.resume();
    schedule();
  };
  const schedule = (): void => {
    const next = queue[0];
    if (timer !== undefined || next === undefined) return;
    timer = setTimeout(sendDue, Math.max(0, next.dueAtMs - performance.now()));
    timer.unref();
  };
  const enqueue = (chunk: Buffer | 'end'): void => {
    const dueAtMs = Math.max(performance.now() + delayMs(), queue.at(-1)?.dueAtMs ?? 0);
    queue.push({ dueAtMs, chunk });
    schedule();
  };
  from.on('data', (chunk: Buffer) => {
    inFlightBytes += chunk.length;
    if (inFlightBytes > MAX_IN_FLIGHT_BYTES) from.pause();
    enqueue(chunk);
  });
  from.once('end', () => enqueue('end'));
}
