import type { Server } from 'node:http';
import type { Logger } from 'pino';

export interface ShutdownParts {
  server: Server;
  logger: Logger;
  timeoutMs: number;
  /** Flush what is still waiting to be written. */
  drainWrites: () => Promise<void>;
  /** Close stores, pools, proxies. */
  closeResources: () => Promise<void>;
  startDraining: () => void;
}

/**
 * SIGTERM: stop accepting, let in-flight requests and streams finish (up to the
 * timeout, then cut them), flush pending writes, close everything.
 */
export async function shutdown(parts: ShutdownParts, signal: string): Promise<void> {
  const { server, logger } = parts;
  logger.info({ signal }, 'contextd shutting down: no new connections, finishing in-flight requests');
  parts.startDraining();
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  // A keep-alive connection whose response finishes after close() would idle
  // until its keep-alive timeout: close connections as they become idle.
  const idleSweep = setInterval(() => server.closeIdleConnections(), 100);
  server.closeIdleConnections();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), parts.timeoutMs);
  });
  if ((await Promise.race([closed, timedOut])) === 'timeout') {
    logger.warn({ timeoutMs: parts.timeoutMs }, 'in-flight requests did not finish in time; closing their connections');
    server.closeAllConnections();
    await closed;
  }
  clearTimeout(timer);
  clearInterval(idleSweep);
  await parts.drainWrites();
  await parts.closeResources();
  logger.info('contextd stopped');
}
