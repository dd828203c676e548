import { once } from 'node:events';
import type { Transform } from 'node:stream';
import zlib from 'node:zlib';
import { describe, expect, test } from 'vitest';
import { createSseReplyAccumulator } from '../../../src/streaming/accumulate-reply.js';
import { createBodyDecoder, decodableAcceptEncoding, type BodyDecoder } from '../../../src/streaming/decode-body.js';
import { recordedTextContent, recordedTextStream } from './recorded-streams.js';

const nodeHasZstd = typeof (zlib as unknown as { createZstdDecompress?: unknown }).createZstdDecompress === 'function';
const recordedEvents = recordedTextStream.split(/(?<=\n\n)/);

/** Compresses each event and flushes after it, as a server does for SSE; one output chunk per event, then the trailer. */
async function compressFlushedPerEvent(compressor: Transform & { flush(callback: () => void): void }, events: readonly string[]): Promise<Buffer[]> {
  let pending: Buffer[] = [];
  compressor.on('data', (data: Buffer) => pending.push(data));
  const chunks: Buffer[] = [];
  for (const event of events) {
    compressor.write(event);
    await new Promise<void>((resolve) => compressor.flush(resolve));
    chunks.push(Buffer.concat(pending));
    pending = [];
  }
  compressor.end();
  await once(compressor, 'end');
  chunks.push(Buffer.concat(pending));
  return chunks;
}

/** What a decoder delivered, and a way to wait until it delivered something. */
function collector() {
  const parts: Buffer[] = [];
  let wake: (() => void) | undefined;
  const onData = (decoded: Uint8Array) => {
    parts.push(Buffer.from(decoded));
    wake?.();
  };
  return {
    onData,
    text: () => Buffer.concat(parts).toString('utf8'),
    async until(condition: () => boolean): Promise<void> {
      while (!condition()) await new Promise<void>((resolve) => (wake = resolve));
    },
  };
}

const compressors: { encoding: string; create: () => Transform & { flush(callback: () => void): void } }[] = [
  { encoding: 'gzip', create: () => zlib.createGzip() },
  { encoding: 'x-gzip', create: () => zlib.createGzip() },
  { encoding: 'deflate', create: () => zlib.createDeflate() },
  { encoding: 'DEFLATE', create: () => zlib.createDeflateRaw() }, // raw deflate, as some servers send it
  { encoding: 'br', create: () => zlib.createBrotliCompress() },
];

describe('createBodyDecoder', () => {
  test.each(compressors)('$encoding: a stream flushed per event decodes event by event, before end()', async ({ encoding, create }) => {
    const chunks = await compressFlushedPerEvent(create(), recordedEvents);
    const decoder = createBodyDecoder(encoding);
    expect(decoder).toBeDefined();
    const out = collector();
    let expected = '';
    for (const [i, event] of recordedEvents.entries()) {
      const compressed = chunks[i]!;
      expect(compressed.length).toBeGreaterThan(0);
      decoder!.push(compressed, out.onData);
      expected += event;
      await out.until(() => out.text() === expected);
    }
    decoder!.push(chunks.at(-1)!, out.onData);
    await decoder!.end(out.onData);
    expect(out.text()).toBe(recordedTextStream);
  });

  test.each(compressors)('$encoding: flush() resolves once every event pushed so far was delivered decoded', async ({ encoding, create }) => {
    const chunks = await compressFlushedPerEvent(create(), recordedEvents);
    const decoder = createBodyDecoder(encoding)!;
    const out = collector();
    let expected = '';
    for (const [i, event] of recordedEvents.entries()) {
      decoder.push(chunks[i]!, out.onData);
      expected += event;
      await decoder.flush();
      expect(out.text()).toBe(expected);
    }
  });

  test('flush() goes through every layer of several codings', async () => {
    // The inner deflate stream is flushed but not finished, as a server streaming through two codings sends it.
    const inner = zlib.createDeflate();
    const innerOut: Buffer[] = [];
    inner.on('data', (data: Buffer) => innerOut.push(data));
    inner.write('data: a\n\n');
    await new Promise<void>((resolve) => inner.flush(resolve));
    const outer = zlib.createGzip();
    const outerOut: Buffer[] = [];
    outer.on('data', (data: Buffer) => outerOut.push(data));
    outer.write(Buffer.concat(innerOut));
    await new Promise<void>((resolve) => outer.flush(resolve));

    const decoder = createBodyDecoder('deflate, gzip')!;
    const out = collector();
    decoder.push(Buffer.concat(outerOut), out.onData);
    await decoder.flush();
    expect(out.text()).toBe('data: a\n\n');
  });

  test('decoded bytes feed the reply accumulator', async () => {
    const chunks = await compressFlushedPerEvent(zlib.createGzip(), recordedEvents);
    const decoder = createBodyDecoder('gzip')!;
    const accumulator = createSseReplyAccumulator();
    const onData = (decoded: Uint8Array) => accumulator.push(decoded);
    for (const compressed of chunks) decoder.push(compressed, onData);
    await decoder.end(onData);
    expect(accumulator.finish()).toMatchObject({ message: { content: recordedTextContent }, incompleteReason: undefined });
  });

  test('a compressed body split at every byte boundary decodes whole', async () => {
    const body = Buffer.from(recordedTextStream);
    const compressed = zlib.gzipSync(body);
    for (let cut = 0; cut <= compressed.length; cut += 7) {
      const decoder = createBodyDecoder('gzip')!;
      const out = collector();
      decoder.push(compressed.subarray(0, cut), out.onData);
      decoder.push(compressed.subarray(cut), out.onData);
      await decoder.end(out.onData);
      expect(out.text(), `split at byte ${cut}`).toBe(recordedTextStream);
    }
  });

  test('several codings are undone last-applied first', async () => {
    const body = Buffer.from(recordedTextStream);
    const compressed = zlib.gzipSync(zlib.brotliCompressSync(zlib.deflateSync(body)));
    const decoder = createBodyDecoder('deflate, br, gzip')!;
    const out = collector();
    decoder.push(compressed, out.onData);
    await decoder.end(out.onData);
    expect(out.text()).toBe(recordedTextStream);
  });

  test.each([undefined, '', 'identity', 'Identity'])('%j passes bytes through as they are pushed', async (encoding) => {
    const decoder = createBodyDecoder(encoding)!;
    const out = collector();
    decoder.push(Buffer.from('data: a\n\n'), out.onData);
    expect(out.text()).toBe('data: a\n\n');
    await decoder.end(out.onData);
    expect(out.text()).toBe('data: a\n\n');
  });

  test('identity inside a list is skipped', async () => {
    const decoder = createBodyDecoder('identity, gzip')!;
    const out = collector();
    decoder.push(zlib.gzipSync('abc'), out.onData);
    await decoder.end(out.onData);
    expect(out.text()).toBe('abc');
  });

  test.each([
    { encoding: 'zstd', decodable: nodeHasZstd },
    { encoding: 'gzip, zstd', decodable: nodeHasZstd },
    { encoding: 'compress', decodable: false },
    { encoding: 'gzip, compress', decodable: false },
    { encoding: 'gzip, gzip, gzip, gzip, gzip', decodable: true },
    { encoding: 'gzip, gzip, gzip, gzip, gzip, gzip', decodable: false }, // more layers than undici accepts
  ])('$encoding: decodable $decodable', ({ encoding, decodable }) => {
    expect(createBodyDecoder(encoding) !== undefined).toBe(decodable);
  });

  test('corrupt data is reported by end(), not thrown', async () => {
    const decoder = createBodyDecoder('gzip')!;
    const out = collector();
    decoder.push(Buffer.from('this is not gzip at all'), out.onData);
    await expect(decoder.end(out.onData)).rejects.toThrow(/header/);
  });

  test.each(['gzip', 'deflate', 'br'])('%s: an empty body decodes to nothing, without error', async (encoding) => {
    const decoder = createBodyDecoder(encoding)!;
    const out = collector();
    decoder.push(new Uint8Array(0), out.onData);
    await decoder.end(out.onData);
    expect(out.text()).toBe('');
  });

  test('corrupt brotli is reported by end()', async () => {
    const decoder = createBodyDecoder('br')!;
    const out = collector();
    decoder.push(Buffer.from([0xff, 0xff, 0xff, 0xff]), out.onData);
    await expect(decoder.end(out.onData)).rejects.toThrow();
  });

  test('a truncated body yields what it holds and no error', async () => {
    const compressed = zlib.gzipSync(Buffer.from(recordedTextStream));
    const decoder = createBodyDecoder('gzip')!;
    const out = collector();
    decoder.push(compressed.subarray(0, compressed.length - 12), out.onData); // trailer and the last bytes missing
    await decoder.end(out.onData);
    expect(recordedTextStream.startsWith(out.text())).toBe(true);
    expect(out.text().length).toBeGreaterThan(0);
  });

  test('destroy() rejects a pending end()', async () => {
    const decoder: BodyDecoder = createBodyDecoder('gzip')!;
    const out = collector();
    decoder.push(zlib.gzipSync('abc').subarray(0, 5), out.onData);
    const ended = decoder.end(out.onData);
    decoder.destroy();
    await expect(ended).rejects.toThrow(/destroyed/);
  });
});

describe('decodableAcceptEncoding', () => {
  const zstd = nodeHasZstd ? ', zstd' : '';
  test.each<{ client: string | undefined; upstream: string | undefined }>([
    { client: undefined, upstream: undefined },
    { client: 'gzip, deflate, br, zstd', upstream: `gzip, deflate, br${zstd}` },
    { client: 'gzip;q=1.0, br;q=0.8, zstd;q=0.9, compress;q=0.5', upstream: `gzip;q=1.0, br;q=0.8${nodeHasZstd ? ', zstd;q=0.9' : ''}` },
    { client: 'GZIP, X-Gzip', upstream: 'GZIP, X-Gzip' },
    { client: 'zstd', upstream: nodeHasZstd ? 'zstd' : 'identity' },
    { client: 'compress', upstream: 'identity' },
    { client: '', upstream: 'identity' },
    { client: 'identity', upstream: 'identity' },
    { client: 'br, identity;q=0', upstream: 'br, identity;q=0' },
    { client: '*', upstream: `gzip, deflate, br${zstd}` },
    { client: 'br, *;q=0.1', upstream: `br, gzip;q=0.1, deflate;q=0.1${zstd === '' ? '' : ', zstd;q=0.1'}` },
    { client: 'x-gzip, *', upstream: `x-gzip, deflate, br${zstd}` },
    { client: 'gzip, *;q=0', upstream: 'gzip, *;q=0' },
    { client: ' gzip ,, br ', upstream: 'gzip, br' },
  ])('$client → $upstream', ({ client, upstream }) => {
    expect(decodableAcceptEncoding(client)).toBe(upstream);
  });

  test('every coding it offers can be decoded', () => {
    for (const coding of decodableAcceptEncoding('*')!.split(', ')) expect(createBodyDecoder(coding)).toBeDefined();
  });
});
