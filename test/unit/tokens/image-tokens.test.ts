import { describe, expect, test } from 'vitest';
import {
  highDetailTokens,
  imageSizeFromDataUrl,
  imageTokens,
  LOW_DETAIL_IMAGE_TOKENS,
  MAX_HIGH_DETAIL_IMAGE_TOKENS,
} from '../../../src/tokens/image-tokens.js';
import { dataUrl, pngHeader } from '../../support/image-fixtures.js';

function gifHeader(width: number, height: number): Buffer {
  const bytes = Buffer.alloc(13);
  bytes.write('GIF89a', 0, 'latin1');
  bytes.writeUInt16LE(width, 6);
  bytes.writeUInt16LE(height, 8);
  return bytes;
}

function jpegHeader(width: number, height: number, exifBytes: number): Buffer {
  const app1 = Buffer.alloc(4 + exifBytes);
  app1.writeUInt16BE(0xffe1, 0);
  app1.writeUInt16BE(2 + exifBytes, 2);
  const sof0 = Buffer.from([0xff, 0xc0, 0x00, 0x11, 0x08, height >> 8, height & 0xff, width >> 8, width & 0xff, 0x03]);
  const dht = Buffer.from([0xff, 0xc4, 0x00, 0x04, 0x00, 0x00]); // C4 is in the SOF range but carries no size
  return Buffer.concat([Buffer.from([0xff, 0xd8]), app1, dht, Buffer.from([0xff]), sof0, Buffer.alloc(20)]);
}

function webpHeader(chunk: 'VP8 ' | 'VP8L' | 'VP8X', width: number, height: number): Buffer {
  const bytes = Buffer.alloc(40);
  bytes.write('RIFF', 0, 'latin1');
  bytes.write('WEBP', 8, 'latin1');
  bytes.write(chunk, 12, 'latin1');
  if (chunk === 'VP8 ') {
    Buffer.from([0x9d, 0x01, 0x2a]).copy(bytes, 23);
    bytes.writeUInt16LE(width, 26);
    bytes.writeUInt16LE(height, 28);
  } else if (chunk === 'VP8L') {
    bytes[20] = 0x2f;
    bytes.writeUInt32LE(((width - 1) | ((height - 1) << 14)) >>> 0, 21);
  } else {
    bytes.writeUIntLE(width - 1, 24, 3);
    bytes.writeUIntLE(height - 1, 27, 3);
  }
  return bytes;
}

describe('OpenAI image rule', () => {
  // The vision guide's worked examples ("Calculating costs"), plus small and extreme shapes.
  test.each([
    [1024, 1024, 765], // published: no fit, 768x768, 4 tiles
    [2048, 4096, 1105], // published: 1024x2048, then 768x1536, 6 tiles
    [512, 512, 255], // never scaled up: 1 tile
    [100, 100, 255],
    [768, 2048, 1445], // the largest result there is: 2x4 tiles
    [4096, 8192, 1105], // same shape as 2048x4096
    [1, 10_000, 765], // fits to 0.2x2048: 1x4 tiles
    [1920, 1080, 1105], // 1365x768: 3x2 tiles
  ])('%ix%i at high detail costs %i', (width, height, tokens) => {
    expect(highDetailTokens(width, height)).toBe(tokens);
    expect(highDetailTokens(height, width)).toBe(tokens);
  });

  test('low detail costs 85 whatever the size', () => {
    expect(imageTokens(dataUrl('image/png', pngHeader(4096, 8192)), 'low')).toBe(85);
    expect(imageTokens('https://example.com/cat.png', 'low')).toBe(LOW_DETAIL_IMAGE_TOKENS);
  });

  test.each([['high'], ['auto'], [undefined], ['original']])(
    'an image of unknown size at detail %s counts the most the rule gives: 1445',
    (detail) => {
      expect(MAX_HIGH_DETAIL_IMAGE_TOKENS).toBe(1445);
      expect(imageTokens('https://example.com/cat.png', detail)).toBe(1445);
    },
  );

  test.each([['high'], ['auto'], [undefined]])('a PNG data URL of known size at detail %s uses its size', (detail) => {
    expect(imageTokens(dataUrl('image/png', pngHeader(1024, 1024)), detail)).toBe(765);
    expect(imageTokens(dataUrl('image/png', pngHeader(2048, 4096)), detail)).toBe(1105);
  });
});

describe('imageSizeFromDataUrl', () => {
  test.each([
    ['PNG', dataUrl('image/png', pngHeader(640, 480))],
    ['GIF', dataUrl('image/gif', gifHeader(640, 480))],
    ['JPEG', dataUrl('image/jpeg', jpegHeader(640, 480, 100))],
    ['JPEG after 60 KB of EXIF', dataUrl('image/jpeg', jpegHeader(640, 480, 60_000))],
    ['WebP lossy', dataUrl('image/webp', webpHeader('VP8 ', 640, 480))],
    ['WebP lossless', dataUrl('image/webp', webpHeader('VP8L', 640, 480))],
    ['WebP extended', dataUrl('image/webp', webpHeader('VP8X', 640, 480))],
    ['a mislabelled type', dataUrl('image/jpeg', pngHeader(640, 480))],
    ['parameters before base64', `data:image/png;name=a.png;base64,${pngHeader(640, 480).toString('base64')}`],
  ])('reads %s', (_name, url) => {
    expect(imageSizeFromDataUrl(url)).toEqual({ width: 640, height: 480 });
  });

  test.each([
    ['an http URL', 'https://example.com/a.png'],
    ['a data URL that is not base64', 'data:image/svg+xml;utf8,<svg width="10" height="10"/>'],
    ['an unknown format', dataUrl('image/heic', Buffer.from('....ftypheic....'))],
    ['a truncated PNG', dataUrl('image/png', pngHeader(640, 480).subarray(0, 18))],
    ['a JPEG whose scan starts before any frame header', dataUrl('image/jpeg', Buffer.from([0xff, 0xd8, 0xff, 0xda, 0, 2, 0, 0]))],
    ['a JPEG with a segment length past the end', dataUrl('image/jpeg', Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0xff, 0xff, 0, 0]))],
    ['a zero-sized PNG', dataUrl('image/png', pngHeader(0, 480))],
    ['garbage base64', 'data:image/png;base64,@@@@not base64 at all@@@@'],
  ])('gives up on %s, so the maximum is counted', (_name, url) => {
    expect(imageSizeFromDataUrl(url)).toBeUndefined();
    expect(imageTokens(url, 'high')).toBe(MAX_HIGH_DETAIL_IMAGE_TOKENS);
  });

  test('reads the header of a large image', () => {
    const url = dataUrl('image/png', Buffer.concat([pngHeader(640, 480), Buffer.alloc(5_000_000)]));
    expect(imageSizeFromDataUrl(url)).toEqual({ width: 640, height: 480 });
  });
});
