// A small RGB PNG whose pixels depend on `seed` (different seeds: different images, for the data tools' tests).
import pngjs from 'pngjs';

export function seededPng(seed: number, w = 8, h = 6): Buffer {
  const p = new pngjs.PNG({ width: w, height: h });
  for (let i = 0; i < w * h; i++) {
    p.data[4 * i] = (seed * 37 + i * 13) & 255;
    p.data[4 * i + 1] = (seed * 11 + i * 7) & 255;
    p.data[4 * i + 2] = (seed * 5 + i * 29) & 255;
    p.data[4 * i + 3] = 255;
  }
  return pngjs.PNG.sync.write(p);
}
