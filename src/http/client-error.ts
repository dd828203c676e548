import { maxHeaderSize, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { InvalidRequestError, RequestHeadersTooLargeError, RequestTimeoutError, type ContextdError } from '../errors.js';
import { answerOnSocket } from './lingering-close.js';
import { rawErrorResponse } from './send-error.js';

/**
 * What contextd answers when Node's HTTP parser gives up on a connection
 * (server 'clientError'): headers over Node's limit → 431, headers or request
 * not received within server.header_timeout / request_timeout → 408, anything
 * that is not HTTP/1.1 (an unknown method, a bad header) → 400; each in
 * OpenAI's error shape, then the connection is closed. Returns what it answered, for the log.
 */
export function answerClientError(error: NodeJS.ErrnoException, socket: Duplex, inFlight: ServerResponse | undefined): ContextdError | undefined {
  // Answered already (the parser reports every later chunk again): the socket lingers until the client closes.
  if (socket.writableEnded) return undefined;
  // A reset client cannot read anything; part of a response already sent cannot be followed by another.
  if (error.code === 'ECONNRESET' || !socket.writable || (inFlight !== undefined && inFlight.headersSent && !inFlight.writableEnded)) {
    socket.destroy();
    return undefined;
  }
  const answer = clientErrorFor(error);
  if (inFlight !== undefined && !inFlight.writableEnded) {
    // A handler is still waiting for this request's body (a timeout, or a
    // malformed chunk): it must find the request failed with this error (its
    // log line reports it) and the connection gone, not answer a second time;
    // so no lingering here.
    socket.write(rawErrorResponse(answer));
    inFlight.req.destroy(answer);
    socket.destroy();
    return answer;
  }
  answerOnSocket(socket, answer);
  return answer;
}

function clientErrorFor(error: NodeJS.ErrnoException): ContextdError {
  switch (error.code) {
    case 'HPE_HEADER_OVERFLOW':
      return new RequestHeadersTooLargeError(maxHeaderSize);
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new RequestTimeoutError();
    default:
      return new InvalidRequestError(`contextd could not parse the request as HTTP/1.1: ${error.message}`, null, 'invalid_http');
  }
}
