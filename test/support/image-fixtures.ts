// Images for the token-counting tests: just the header bytes a size is read
// from (a parser must not need the rest), as bytes or as a data URL.

export const dataUrl = (mime: string, bytes: Buffer): string => `data:${mime};base64,${bytes.toString('base64')}`;

/** A PNG's signature and IHDR chunk: width, height, 8-bit RGBA. */
export function pngHeader(width: number, height: number): Buffer {
  const bytes = Buffer.alloc(33);
  Buffer.from('\x89PNG\r\n\x1a\n', 'latin1').copy(bytes, 0);
  bytes.writeUInt32BE(13, 8);
  bytes.write('IHDR', 12, 'latin1');
  bytes.writeUInt32BE(width, 16);
  bytes.writeUInt32BE(height, 20);
  bytes[24] = 8; // bit depth
  bytes[25] = 6; // RGBA
  return bytes;
}

/** A PNG data URL of that size. */
export const pngUrl = (width: number, height: number): string => dataUrl('image/png', pngHeader(width, height));
