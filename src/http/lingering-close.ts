// Closing a connection the client is still sending on resets it (the kernel
// answers unread bytes with RST), and the reset can reach the client before
// the answer does: it then sees EPIPE or ECONNRESET instead of the 413 (issue
// 12: about half the time, with a 5 MB body over the limit). So, as RFC 9112
// §9.6 advises, contextd answers first, in full, then keeps reading and
// discarding what the client sends, and closes only once it has stopped, or
// after a bound.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { rawErrorResponse, sendErrorLeavingOpen } from './send-error.js';

/** How much of an unwanted request body is read and thrown away before the connection is cut regardless. */
const MAX_DISCARDED_BYTES = 64 * 1024 * 1024;
/** How long a socket answered without a response object waits for the client to close its side. */
const LINGER_MS = 2_000;

/**
 * Answers a request whose body has not been wholly read: the error goes out at
 * once, head and body, with `connection: close`; the response is ended (and
 * the connection closed) once the body has arrived, or MAX_DISCARDED_BYTES of
 * it were thrown away. server.request_timeout bounds how long that may take.
 */
export function answerBeforeBody(req: IncomingMessage, res: ServerResponse, error: unknown): void {
  sendErrorLeavingOpen(res, error, { connection: 'close' });
  let discardedBytes = 0;
  const close = (): void => {
    req.off('data', onData).off('end', close);
    if (!res.writableEnded) res.end();
  };
  const onData = (chunk: Buffer): void => {
    discardedBytes += chunk.length;
    if (discardedBytes > MAX_DISCARDED_BYTES) close();
  };
  req.on('data', onData).once('end', close);
  req.resume();
}

/**
 * Answers on a bare socket (Node's parser gave up on the request, or an
 * upgrade contextd does not take): the error, then a half-close; the socket is
 * destroyed once the client closes its side, or after LINGER_MS.
 */
export function answerOnSocket(socket: Duplex, error: unknown): void {
  socket.end(rawErrorResponse(error));
  socket.resume(); // read and discard: unread bytes would turn the close into a reset
  const timer = setTimeout(() => socket.destroy(), LINGER_MS).unref();
  socket.once('close', () => clearTimeout(timer));
  socket.once('end', () => socket.destroy());
}
