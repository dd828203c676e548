// The image rules OpenAI publishes (vision guide, "Calculating costs"; which model bills by
// which is in image-rule.ts), applied to an image_url part.
//
// Tiles (gpt-4o, gpt-4.1, gpt-4.5; gpt-4o-mini at its own rates): detail "low" costs the base
// (85 tokens). Otherwise the image is scaled to fit a 2048x2048 square, then scaled down so its
// shortest side is 768 px; each 512 px tile of the result costs the tile rate (170), plus the
// base. Images are only ever scaled down (512x512 costs 255).
//
// Patches (gpt-4.1-mini, gpt-4.1-nano, o4-mini, gpt-5-mini, gpt-5-nano): the 32x32 px patches
// that cover the image, at most 1536, times the model's multiplier; `detail` is not part of
// the rule.

import { DEFAULT_IMAGE_RULE, type ImageRule, type TileImageRule } from './image-rule.js';

export const LOW_DETAIL_IMAGE_TOKENS = DEFAULT_IMAGE_RULE.baseTokens;
const TILE_PX = 512;
const FIT_PX = 2048;
const SHORT_SIDE_PX = 768;
const PATCH_PX = 32;
const MAX_PATCHES = 1536;

export interface ImageSize {
  width: number;
  height: number;
}

/** Tokens of one image_url part under `rule`; `detail` is as the client sent it (absent means "auto"). */
export function imageTokens(url: string, detail: unknown, rule: ImageRule = DEFAULT_IMAGE_RULE): number {
  if (rule.kind === 'tiles' && detail === 'low') return rule.baseTokens;
  // "auto" lets the model pick low or high; an unknown value is treated like it, at its maximum.
  const size = imageSizeFromDataUrl(url);
  if (size === undefined) return maxImageTokens(rule);
  return rule.kind === 'tiles' ? highDetailTokens(size.width, size.height, rule) : patchTokens(size.width, size.height, rule.multiplier);
}

/**
 * The most one image can cost under `rule`, counted when its size cannot be read (an http URL,
 * a file_id, an unknown format), so the budget holds whatever the image turns out to be.
 * Tiles: after both scalings an image is at most 768x2048, 2x4 tiles (85 + 170: 1445).
 * Patches: the 1536-patch cap times the multiplier.
 */
export function maxImageTokens(rule: ImageRule): number {
  return rule.kind === 'tiles' ? highDetailTokens(SHORT_SIDE_PX, FIT_PX, rule) : timesMultiplier(MAX_PATCHES, rule.multiplier);
}

export const MAX_HIGH_DETAIL_IMAGE_TOKENS = maxImageTokens(DEFAULT_IMAGE_RULE);

export function highDetailTokens(width: number, height: number, rule: TileImageRule = DEFAULT_IMAGE_RULE): number {
  let w = width;
  let h = height;
  const fit = FIT_PX / Math.max(w, h);
  if (fit < 1) {
    w *= fit;
    h *= fit;
  }
  const shrink = SHORT_SIDE_PX / Math.min(w, h);
  if (shrink < 1) {
    w *= shrink;
    h *= shrink;
  }
  // Unrounded sides: ceil(x / 512) is the same for x and ceil(x), and never below floor(x)'s.
  return Math.ceil(w / TILE_PX) * Math.ceil(h / TILE_PX) * rule.tileTokens + rule.baseTokens;
}

/**
 * The patch rule: ceil(w/32)·ceil(h/32) patches, at most 1536, times the multiplier.
 *
 * Above 1536 the guide scales the image down so that whole patches cover it (its example:
 * 1800x2400 becomes 1056x1408, 33x44 = 1452 patches), but the API has been seen to bill such
 * images at the cap instead (4000x1474 on gpt-4.1-mini: 2488 tokens, 1536 · 1.62, where the
 * scaling gives 1449 patches; OpenAI developer forum, "Vision pricing calculator inaccurate").
 * So an image that needs scaling counts the cap: at most 6% high by the guide, never low by
 * what was billed.
 */
export function patchTokens(width: number, height: number, multiplier: number): number {
  const patches = Math.ceil(width / PATCH_PX) * Math.ceil(height / PATCH_PX);
  return timesMultiplier(Math.min(patches, MAX_PATCHES), multiplier);
}

/** Patches times the multiplier, rounded up (1024 · 1.62 = 1658.88: 1659); float noise (150 · 1.62 = 243.00000000000003) does not add a token. */
function timesMultiplier(patches: number, multiplier: number): number {
  return Math.ceil(Math.round(patches * multiplier * 1e6) / 1e6);
}

/**
 * Width and height of a PNG, GIF, WebP or JPEG `data:…;base64,` URL, read from the header
 * bytes. Only the few bytes needed are decoded (base64 maps byte i to characters 4*floor(i/3)
 * onwards), so a multi-megabyte image costs a handful of tiny decodes, and JPEG segments can be
 * hopped over however large their EXIF or ICC blocks are.
 */
export function imageSizeFromDataUrl(url: string): ImageSize | undefined {
  if (!/^data:image\/[a-z0-9.+-]+(;[^,;]*)*;base64,/i.test(url.slice(0, 256))) return undefined;
  const payload = new Base64Bytes(url, url.indexOf(',') + 1);
  const size = pngSize(payload) ?? gifSize(payload) ?? webpSize(payload) ?? jpegSize(payload);
  if (size === undefined || size.width <= 0 || size.height <= 0) return undefined;
  return size;
}

class Base64Bytes {
  constructor(
    private readonly text: string,
    private readonly start: number,
  ) {}

  /** `length` bytes from byte `offset`, or undefined past the end. */
  read(offset: number, length: number): Uint8Array | undefined {
    const first = this.start + Math.floor(offset / 3) * 4;
    const last = this.start + Math.ceil((offset + length) / 3) * 4;
    const decoded = Buffer.from(this.text.slice(first, last), 'base64');
    const skip = offset % 3;
    if (decoded.length < skip + length) return undefined;
    return decoded.subarray(skip, skip + length);
  }
}

function startsWith(bytes: Uint8Array, ascii: string, at = 0): boolean {
  for (let i = 0; i < ascii.length; i++) if (bytes[at + i] !== ascii.charCodeAt(i)) return false;
  return true;
}

function pngSize(payload: Base64Bytes): ImageSize | undefined {
  const header = payload.read(0, 24);
  if (header === undefined || !startsWith(header, '\x89PNG\r\n\x1a\n') || !startsWith(header, 'IHDR', 12)) return undefined;
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

function gifSize(payload: Base64Bytes): ImageSize | undefined {
  const header = payload.read(0, 10);
  if (header === undefined || !(startsWith(header, 'GIF87a') || startsWith(header, 'GIF89a'))) return undefined;
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
  return { width: view.getUint16(6, true), height: view.getUint16(8, true) };
}

function webpSize(payload: Base64Bytes): ImageSize | undefined {
  const header = payload.read(0, 30);
  if (header === undefined || !startsWith(header, 'RIFF') || !startsWith(header, 'WEBP', 8)) return undefined;
  const byte = (i: number): number => header[i]!;
  if (startsWith(header, 'VP8 ', 12)) {
    // Lossy: a 3-byte frame tag, the start code 9d 01 2a, then 14-bit width and height.
    if (byte(23) !== 0x9d || byte(24) !== 0x01 || byte(25) !== 0x2a) return undefined;
    return { width: (byte(26) | (byte(27) << 8)) & 0x3fff, height: (byte(28) | (byte(29) << 8)) & 0x3fff };
  }
  if (startsWith(header, 'VP8L', 12)) {
    // Lossless: signature 0x2f, then width-1 and height-1 as 14-bit little-endian fields.
    if (byte(20) !== 0x2f) return undefined;
    const bits = byte(21) | (byte(22) << 8) | (byte(23) << 16) | (byte(24) << 24);
    return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
  }
  if (startsWith(header, 'VP8X', 12)) {
    // Extended: canvas width-1 and height-1 as 24-bit little-endian fields.
    return {
      width: (byte(24) | (byte(25) << 8) | (byte(26) << 16)) + 1,
      height: (byte(27) | (byte(28) << 8) | (byte(29) << 16)) + 1,
    };
  }
  return undefined;
}

// Start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
const JPEG_SOF_MARKERS = new Set([0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf]);
const MAX_JPEG_SEGMENTS = 64;

function jpegSize(payload: Base64Bytes): ImageSize | undefined {
  const soi = payload.read(0, 2);
  if (soi === undefined || soi[0] !== 0xff || soi[1] !== 0xd8) return undefined;
  let offset = 2;
  for (let segment = 0; segment < MAX_JPEG_SEGMENTS; segment++) {
    const head = payload.read(offset, 9);
    if (head === undefined || head[0] !== 0xff) return undefined;
    const marker = head[1]!;
    if (marker === 0xff) {
      offset += 1; // fill byte before a marker
      continue;
    }
    if (marker === 0xd9 || marker === 0xda) return undefined; // end of image / scan data before any frame header
    if ((marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      offset += 2; // markers without a length
      continue;
    }
    if (JPEG_SOF_MARKERS.has(marker)) {
      return { height: (head[5]! << 8) | head[6]!, width: (head[7]! << 8) | head[8]! };
    }
    offset += 2 + ((head[2]! << 8) | head[3]!);
  }
  return undefined;
}
