import type { IncomingMessage } from 'node:http';
import { BodyTooLargeError } from '../errors.js';

/**
 * Reads the whole request body, refusing more than `maxBodyBytes` without
 * buffering the excess. A refused request is left paused, not destroyed: the
 * client is still sending, and must be able to read the 413 (http/lingering-close.ts).
 */
export function readBody(req: IncomingMessage, maxBodyBytes: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBodyBytes) return Promise.reject(new BodyTooLargeError(maxBodyBytes));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = (): void => {
      req.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= maxBodyBytes) {
        chunks.push(chunk);
        return;
      }
      stop();
      req.pause();
      reject(new BodyTooLargeError(maxBodyBytes));
    };
    const onEnd = (): void => {
      stop();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (error: Error): void => {
      stop();
      reject(error);
    };
    // The connection closed before the body ended (the client left, or a timeout cut it).
    const onClose = (): void => onError(new Error('the request closed before its body ended'));
    req.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
  });
}
