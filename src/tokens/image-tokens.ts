// OpenAI's published image-input rule (vision guide, "Calculating costs"; gpt-4o, gpt-4.1,
// gpt-4.5): detail "low" costs 85 tokens. Otherwise the image is scaled to fit a 2048x2048
// square, then scaled down so its shortest side is 768 px; each 512 px tile of the result
// costs 170 tokens, plus 85. Images are only ever scaled down (512x512 costs 255).

export const LOW_DETAIL_IMAGE_TOKENS = 85;
const TILE_TOKENS = 170;
const TILE_PX = 512;
const FIT_PX = 2048;
const SHORT_SIDE_PX = 768;

/**
 * The most a high/auto-detail image can cost: after both scalings it is at most 768x2048,
 * which is 2x4 tiles: 8 * 170 + 85 = 1445. Used when the size cannot be read (an http URL,
 * an unknown format), so the budget holds whatever the image turns out to be.
 */
export const MAX_HIGH_DETAIL_IMAGE_TOKENS = highDetailTokens(SHORT_SIDE_PX, FIT_PX);

export interface ImageSize {
  width: number;
  height: number;
}

/** Tokens of one image_url part; `detail` is as the client sent it (absent means "auto"). */
export function imageTokens(url: string, detail: unknown): number {
  if (detail === 'low') return LOW_DETAIL_IMAGE_TOKENS;
  // "auto" lets the model pick low or high; an unknown value is treated like it, at its maximum.
  const size = imageSizeFromDataUrl(url);
  return size === undefined ? MAX_HIGH_DETAIL_IMAGE_TOKENS : highDetailTokens(size.width, size.height);
}

export function highDetailTokens(width: number, height: number): number {
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
  return Math.ceil(w / TILE_PX) * Math.ceil(h / TILE_PX) * TILE_TOKENS + LOW_DETAIL_IMAGE_TOKENS;
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
