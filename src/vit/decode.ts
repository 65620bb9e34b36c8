// Image files → RGB in Node: PNG (pngjs) or JPEG (jpeg-js), both pure JavaScript but needing Node's Buffer/zlib,
// which is why this is not in image.ts (the browser page imports that one and decodes with the browser instead).
// The result is 8-bit RGB: gray replicated, alpha dropped (not composited), 16-bit PNG scaled to 8 bits by pngjs.
import { inflateSync } from 'node:zlib';
import jpeg from 'jpeg-js';
import pngjs from 'pngjs';
import { ImageError, rgbFromRgba, type RgbImage } from './image.js';

const isPng = (b: Uint8Array) => b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47 && b[4] === 0x0d && b[5] === 0x0a && b[6] === 0x1a && b[7] === 0x0a;
const isJpeg = (b: Uint8Array) => b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;

/**
 * The most pixels an image may declare (100 megapixels, e.g. 10 000 × 10 000): a 70-byte PNG declaring 30 000 ×
 * 30 000 made the decoder allocate 13 GB and classify the black result. Cell images are far smaller.
 */
export const MAX_IMAGE_PIXELS = 100_000_000;

const u32be = (b: Uint8Array, i: number) => ((b[i] << 24) >>> 0) + (b[i + 1] << 16) + (b[i + 2] << 8) + b[i + 3];

/**
 * Before pngjs decodes: the size its header declares must be within MAX_IMAGE_PIXELS, and (non-interlaced) its
 * compressed pixel data must inflate to the rows that size needs — pngjs fills missing rows with zeros, so a
 * truncated file would otherwise decode as a partly black image without a word.
 */
function checkPngData(bytes: Uint8Array, name: string): void {
  if (bytes.length < 33 || String.fromCharCode(...bytes.subarray(12, 16)) !== 'IHDR') throw new ImageError(`${name}: corrupt PNG (no IHDR header)`);
  const width = u32be(bytes, 16);
  const height = u32be(bytes, 20);
  if (width * height > MAX_IMAGE_PIXELS) {
    throw new ImageError(`${name}: PNG declares ${width}×${height} pixels, above the limit of ${MAX_IMAGE_PIXELS / 1e6} megapixels (corrupt, or not a cell image)`);
  }
  const [depth, colour, , , interlace] = bytes.subarray(24, 29);
  const channels = ({ 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as Record<number, number>)[colour];
  if (channels === undefined || interlace !== 0) return; // pngjs reports a bad colour type; Adam7's row sizes differ
  const idat: Uint8Array[] = [];
  for (let i = 8; i + 8 <= bytes.length; ) {
    const len = u32be(bytes, i);
    const type = String.fromCharCode(...bytes.subarray(i + 4, i + 8));
    if (type === 'IDAT') idat.push(bytes.subarray(i + 8, Math.min(bytes.length, i + 8 + len)));
    if (type === 'IEND') break;
    i += 12 + len;
  }
  const want = height * (1 + Math.ceil((width * channels * depth) / 8));
  let got: number;
  try {
    got = inflateSync(Buffer.concat(idat), { finishFlush: 2 /* Z_SYNC_FLUSH: what a truncated stream holds */ }).length;
  } catch (e) {
    throw new ImageError(`${name}: corrupt PNG (its pixel data does not inflate: ${(e as Error).message})`);
  }
  if (got < want) throw new ImageError(`${name}: corrupt PNG (truncated: ${got} of the ${want} bytes of pixel data its ${width}×${height} header needs)`);
}

/** Decode PNG or JPEG bytes to RGB; `name` (the file) is named in every error. */
export function decodeImage(bytes: Uint8Array, name = 'image'): RgbImage {
  if (isPng(bytes)) {
    checkPngData(bytes, name);
    let png: { width: number; height: number; data: Uint8Array };
    try {
      const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      png = pngjs.PNG.sync.read(buf);
    } catch (e) {
      throw new ImageError(`${name}: corrupt PNG (${(e as Error).message})`);
    }
    if (!png.width || !png.height) throw new ImageError(`${name}: PNG has no pixels (${png.width}×${png.height})`);
    return rgbFromRgba(png.data, png.width, png.height);
  }
  if (isJpeg(bytes)) {
    let img: { width: number; height: number; data: Uint8Array };
    try {
      img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 1024, maxResolutionInMP: MAX_IMAGE_PIXELS / 1e6 });
    } catch (e) {
      throw new ImageError(`${name}: corrupt JPEG (${(e as Error).message})`);
    }
    if (!img.width || !img.height || img.data.length !== img.width * img.height * 4) {
      throw new ImageError(`${name}: corrupt JPEG (decoded ${img.width}×${img.height} with ${img.data.length} bytes)`);
    }
    return rgbFromRgba(img.data, img.width, img.height);
  }
  const head = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
  throw new ImageError(`${name}: not a PNG or JPEG image (${bytes.length} bytes${bytes.length ? `, starting ${head}` : ''})`);
}
