// Synthetic "blood smear" images drawn on a canvas: a pink background with pale red cells and one
// leukocyte whose nucleus shape depends on `kind` (0 round, 1 lobed, 2 kidney-shaped, 3 granular
// bilobed). Not real cells: a sample to try the page, and an easy four-class task for in-page training.
import type { RgbImage } from '../src/vit/image.js';

export const SYNTHETIC_KINDS = ['round nucleus', 'lobed nucleus', 'kidney nucleus', 'granular'] as const;

function rng(seed: number): () => number {
  let s = (Math.floor(seed) ^ 0x9e3779b9) >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

export function drawSyntheticCell(size: number, kind: number, seed: number): RgbImage {
  const u = rng(seed);
  const c = document.createElement('canvas');
  c.width = size;
  c.height = size;
  const g = c.getContext('2d', { willReadFrequently: true })!;
  g.fillStyle = `rgb(${235 + 15 * u()}, ${212 + 15 * u()}, ${220 + 15 * u()})`;
  g.fillRect(0, 0, size, size);
  // Red cells around.
  for (let i = 0; i < 7; i++) {
    const r = size * (0.09 + 0.04 * u());
    g.fillStyle = `rgba(${205 + 30 * u()}, ${120 + 30 * u()}, ${130 + 20 * u()}, 0.8)`;
    g.beginPath();
    g.arc(size * u(), size * u(), r, 0, 2 * Math.PI);
    g.fill();
  }
  // The leukocyte: cytoplasm, then the nucleus.
  const cx = size * (0.42 + 0.16 * u());
  const cy = size * (0.42 + 0.16 * u());
  const R = size * (0.26 + 0.06 * u());
  g.fillStyle = kind === 3 ? 'rgb(238, 160, 120)' : `rgb(${190 + 20 * u()}, ${185 + 20 * u()}, ${225 + 20 * u()})`;
  g.beginPath();
  g.arc(cx, cy, R, 0, 2 * Math.PI);
  g.fill();
  g.fillStyle = `rgb(${80 + 25 * u()}, ${40 + 20 * u()}, ${120 + 30 * u()})`;
  const blob = (x: number, y: number, r: number) => {
    g.beginPath();
    g.arc(x, y, r, 0, 2 * Math.PI);
    g.fill();
  };
  const a0 = 2 * Math.PI * u();
  if (kind === 0) blob(cx, cy, R * 0.78);
  else if (kind === 1) {
    for (let i = 0; i < 3; i++) blob(cx + R * 0.45 * Math.cos(a0 + (2 * i * Math.PI) / 3), cy + R * 0.45 * Math.sin(a0 + (2 * i * Math.PI) / 3), R * 0.3);
  } else if (kind === 2) {
    blob(cx, cy, R * 0.62);
    g.fillStyle = `rgb(200, 195, 232)`;
    blob(cx + R * 0.55 * Math.cos(a0), cy + R * 0.55 * Math.sin(a0), R * 0.35);
  } else {
    blob(cx + R * 0.35 * Math.cos(a0), cy + R * 0.35 * Math.sin(a0), R * 0.32);
    blob(cx - R * 0.35 * Math.cos(a0), cy - R * 0.35 * Math.sin(a0), R * 0.32);
    g.fillStyle = 'rgb(200, 70, 50)';
    for (let i = 0; i < 18; i++) {
      const t = 2 * Math.PI * u();
      const d = R * (0.5 + 0.4 * u());
      blob(cx + d * Math.cos(t), cy + d * Math.sin(t), Math.max(0.6, size * 0.018));
    }
  }
  const d = g.getImageData(0, 0, size, size).data;
  const out = new Uint8Array(size * size * 3);
  for (let i = 0; i < size * size; i++) {
    out[3 * i] = d[4 * i];
    out[3 * i + 1] = d[4 * i + 1];
    out[3 * i + 2] = d[4 * i + 2];
  }
  return { width: size, height: size, data: out };
}
