// Image files → RGB in Node: PNG (pngjs) or JPEG (jpeg-js), both pure JavaScript but needing Node's Buffer/zlib,
// which is why this is not in image.ts (the browser page imports that one and decodes with the browser instead).
// The result is 8-bit RGB: gray replicated, alpha dropped (not composited), 16-bit PNG scaled to 8 bits by pngjs.
import jpeg from 'jpeg-js';
import pngjs from 'pngjs';
import { ImageError, rgbFromRgba, type RgbImage } from './image.js';

const isPng = (b: Uint8Array) => b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47 && b[4] === 0x0d && b[5] === 0x0a && b[6] === 0x1a && b[7] === 0x0a;
const isJpeg = (b: Uint8Array) => b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;

/** Decode PNG or JPEG bytes to RGB; `name` (the file) is named in every error. */
export function decodeImage(bytes: Uint8Array, name = 'image'): RgbImage {
  if (isPng(bytes)) {
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
      img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 1024 });
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
