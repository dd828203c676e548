import type { IncomingMessage } from 'node:http';
import { BodyTooLargeError } from '../errors.js';

/** Reads the whole request body, refusing more than `maxBodyBytes` without buffering the excess. */
export async function readBody(req: IncomingMessage, maxBodyBytes: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBodyBytes) throw new BodyTooLargeError(maxBodyBytes);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBodyBytes) throw new BodyTooLargeError(maxBodyBytes);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}
