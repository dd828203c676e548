// Undoes the upstream's Content-Encoding on the tee's side branch, so the reply can
// be read while the client gets the encoded bytes untouched. Incremental: a stream
// the upstream flushed per event decodes event by event, not at the end.

import zlib from 'node:zlib';
import type { Transform } from 'node:stream';

export interface BodyDecoder {
  /**
   * Feeds encoded bytes. Decoded bytes reach `onData` possibly after push() returned (zlib works
   * on the thread pool); they always go to the `onData` of the latest call, so pass the same
   * function every time. Bytes pushed after a decoding error are dropped.
   */
  push(chunk: Uint8Array, onData: (decoded: Uint8Array) => void): void;
  /**
   * Marks the end of the encoded body. Resolves once every decoded byte went to `onData`;
   * rejects with the first decoding error (corrupt data), whenever it happened.
   * A body cut off mid-stream is not an error: its decodable part is delivered, as curl and
   * undici do, and the reader of the decoded bytes notices that the reply is incomplete.
   */
  end(onData: (decoded: Uint8Array) => void): Promise<void>;
  /**
   * Resolves once every byte pushed so far went, decoded, to `onData` (at once for an
   * unencoded body). What the client has been sent can then be judged by what was decoded.
   */
  flush(): Promise<void>;
  /** Frees the zlib state when the body will not be read to its end (e.g. the client went away). */
  destroy(): void;
}

type OnData = (decoded: Uint8Array) => void;

interface Stage {
  write(chunk: Uint8Array): void;
  end(): void;
  /** Resolves once what was written so far has been decoded and handed on. */
  flush(): Promise<void>;
  destroy(): void;
}

type DecompressorFactory = (firstChunk: Uint8Array) => Transform;

// Zstandard reached node:zlib in Node 22.15; feature-detect rather than pin a version.
const createZstdDecompress = (zlib as unknown as { createZstdDecompress?: () => Transform }).createZstdDecompress;

// Z_SYNC_FLUSH on every write and at the end, as undici's fetch and curl do: output appears as
// soon as the input holds it, and a truncated body yields what it has instead of an error.
const zlibFlush = { flush: zlib.constants.Z_SYNC_FLUSH, finishFlush: zlib.constants.Z_SYNC_FLUSH };
const brotliFlush = {
  flush: zlib.constants.BROTLI_OPERATION_FLUSH,
  finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH,
};

const decompressors = new Map<string, DecompressorFactory>([
  ['gzip', () => zlib.createGunzip(zlibFlush)],
  ['x-gzip', () => zlib.createGunzip(zlibFlush)],
  // "deflate" should be zlib-wrapped (RFC 9110 §8.4.1.2), but some servers send raw deflate;
  // a zlib header's first byte has 8 (deflate) in its low nibble, as undici checks too.
  ['deflate', (first) => ((first[0] ?? 0) & 0x0f) === 0x08 ? zlib.createInflate(zlibFlush) : zlib.createInflateRaw(zlibFlush)],
  ['br', () => zlib.createBrotliDecompress(brotliFlush)],
  ...(createZstdDecompress === undefined ? [] : [['zstd', () => createZstdDecompress()] as const]),
]);

// Each layer costs a zlib context; undici refuses more than five too (CVE-2022-32206 in curl).
const maxContentEncodings = 5;

/**
 * A decoder for a Content-Encoding value ('gzip', 'x-gzip', 'deflate', 'br', 'zstd' where node:zlib
 * has it, 'identity', undefined; a comma list means several applied in order); undefined for
 * encodings it cannot decode.
 */
export function createBodyDecoder(contentEncoding: string | undefined): BodyDecoder | undefined {
  const codings = (contentEncoding ?? '')
    .split(',')
    .map((coding) => coding.trim().toLowerCase())
    .filter((coding) => coding !== '' && coding !== 'identity');
  if (codings.length > maxContentEncodings) return undefined;
  const factories: DecompressorFactory[] = [];
  for (const coding of codings) {
    const factory = decompressors.get(coding);
    if (factory === undefined) return undefined;
    factories.push(factory);
  }
  return chainDecoder(factories.reverse()); // the last coding applied is the first to undo
}

function chainDecoder(outermostFirst: readonly DecompressorFactory[]): BodyDecoder {
  let onData: OnData = () => {};
  let failure: Error | undefined;
  let ended = false;
  let settle: { resolve: () => void; reject: (error: Error) => void } | undefined;

  const stages: Stage[] = [];
  let next: Stage = {
    write: (chunk) => onData(chunk),
    end: () => settle?.resolve(),
    flush: () => Promise.resolve(),
    destroy: () => {},
  };
  for (let i = outermostFirst.length - 1; i >= 0; i--) {
    next = decompressorStage(outermostFirst[i]!, next, fail);
    stages.unshift(next);
  }
  const first = next;

  function fail(error: Error): void {
    if (failure !== undefined) return;
    failure = error;
    for (const stage of stages) stage.destroy();
    settle?.reject(error);
  }

  return {
    push(chunk, receive) {
      onData = receive;
      if (failure !== undefined || ended) return;
      first.write(chunk);
    },
    end(receive) {
      onData = receive;
      if (failure !== undefined) return Promise.reject(failure);
      if (ended) return Promise.reject(new Error('BodyDecoder.end() called twice'));
      ended = true;
      const done = new Promise<void>((resolve, reject) => {
        settle = { resolve, reject };
      });
      first.end();
      return done;
    },
    async flush() {
      // Outermost first: each layer's flush hands its output to the next before that one is flushed.
      for (const stage of stages) {
        if (failure !== undefined || ended) return;
        await stage.flush();
      }
    },
    destroy() {
      ended = true;
      fail(new Error('body decoder destroyed before the body ended'));
    },
  };
}

/** One decompression layer, created on its first bytes so deflate can tell zlib from raw. */
function decompressorStage(create: DecompressorFactory, next: Stage, fail: (error: Error) => void): Stage {
  let stream: Transform | undefined;
  let destroyed = false;
  return {
    write(chunk) {
      if (destroyed || chunk.length === 0) return;
      if (stream === undefined) {
        stream = create(chunk);
        stream.on('data', (decoded: Uint8Array) => next.write(decoded));
        stream.on('end', () => next.end());
        stream.on('error', fail);
      }
      stream.write(chunk);
    },
    end() {
      if (destroyed) return;
      // An empty encoded body decodes to an empty body rather than to "unexpected end of file".
      if (stream === undefined) next.end();
      else stream.end();
    },
    flush() {
      const current = stream;
      if (destroyed || current === undefined || current.writableEnded) return Promise.resolve();
      // The flush callback can run before output zlib pushed while 'data' was buffered is
      // emitted (on the next tick); a macrotask later, it has all been.
      return new Promise((resolve) => (current as Transform & { flush(done: () => void): void }).flush(() => setImmediate(resolve)));
    },
    destroy() {
      destroyed = true;
      stream?.destroy();
    },
  };
}

/** Codings a `*` in the client's Accept-Encoding stands for, in the order they are offered upstream. */
const starCodings = ['gzip', 'deflate', 'br', ...(createZstdDecompress === undefined ? [] : ['zstd'])];

/**
 * The Accept-Encoding value to send upstream when contextd must read the reply: the client's list
 * filtered to what createBodyDecoder understands, q-values kept. A `*` with a non-zero q-value
 * becomes the decodable codings the client did not list, with that q-value; `*;q=0` is kept, as it
 * only forbids. undefined when the client sent no Accept-Encoding (forward none either); 'identity'
 * when the client listed codings but none is decodable, since sending no header at all would let
 * the upstream pick any coding, the undecodable ones included.
 */
export function decodableAcceptEncoding(clientValue: string | undefined): string | undefined {
  if (clientValue === undefined) return undefined;
  const elements = clientValue
    .split(',')
    .map((element) => element.trim())
    .filter((element) => element !== '')
    .map((element) => {
      const semicolon = element.indexOf(';');
      const coding = (semicolon === -1 ? element : element.slice(0, semicolon)).trim().toLowerCase();
      const params = semicolon === -1 ? '' : element.slice(semicolon);
      return { element, coding, params };
    });
  const listed = new Set(elements.map(({ coding }) => (coding === 'x-gzip' ? 'gzip' : coding)));
  const kept: string[] = [];
  for (const { element, coding, params } of elements) {
    if (coding === '*') {
      if (qValue(params) === 0) kept.push(element);
      else for (const star of starCodings) if (!listed.has(star)) kept.push(`${star}${params}`);
    } else if (coding === 'identity' || decompressors.has(coding)) {
      kept.push(element);
    }
  }
  return kept.length > 0 ? kept.join(', ') : 'identity';
}

function qValue(params: string): number {
  const match = /;\s*q\s*=\s*([0-9.]+)/i.exec(params);
  if (match === null) return 1;
  const q = Number(match[1]);
  return Number.isNaN(q) ? 1 : q;
}
