import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import httpProxy from 'http-proxy';

/**
 * WebSocket upgrades under /v1/ (e.g. /v1/realtime) pass through untouched:
 * http-proxy does the handshake relay and pipes frames both ways.
 */
export class WebSocketPassThrough {
  readonly #proxy = httpProxy.createProxyServer({ ws: true, changeOrigin: true, ignorePath: true, xfwd: false });

  constructor(onError: (error: Error) => void) {
    this.#proxy.on('error', (error, _req, socket) => {
      onError(error);
      if (socket !== undefined && 'destroy' in socket) (socket as Duplex).destroy();
    });
  }

  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, targetUrl: string): void {
    this.#proxy.ws(req, socket, head, { target: targetUrl });
  }

  close(): void {
    this.#proxy.close();
  }
}
