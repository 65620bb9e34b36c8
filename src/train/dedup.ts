// Duplicate finder for image folders: exact duplicates (identical decoded pixels, whatever the file format or
// compression) and near duplicates (64-bit dHash within a Hamming distance). The first image in sorted order
// (torchvision's walk order) is kept; every later image that duplicates a kept one is reported, or removed.
import { readFileSync, unlinkSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { relative } from 'node:path';
import { decodeImage } from '../vit/decode.js';
import type { RgbImage } from '../vit/image.js';
import { DataError, describeIgnored, walkImages } from './data.js';

/** 64-bit difference hash as [hi, lo] u32s: gray image box-averaged to 9×8, bit = left pixel < right pixel. */
export function dHash(img: RgbImage): [number, number] {
  const { width: w, height: h, data } = img;
  const W = 9;
  const H = 8;
  const g = new Float64Array(W * H);
  for (let y = 0; y < H; y++) {
    const y0 = (y * h) / H;
    const y1 = ((y + 1) * h) / H;
    for (let x = 0; x < W; x++) {
      const x0 = (x * w) / W;
      const x1 = ((x + 1) * w) / W;
      // Area average over [x0, x1) × [y0, y1) with fractional edge pixels.
      let s = 0;
      let a = 0;
      for (let py = Math.floor(y0); py < Math.min(h, Math.ceil(y1)); py++) {
        const wy = Math.min(py + 1, y1) - Math.max(py, y0);
        for (let px = Math.floor(x0); px < Math.min(w, Math.ceil(x1)); px++) {
          const wx = Math.min(px + 1, x1) - Math.max(px, x0);
          const i = (py * w + px) * 3;
          s += wx * wy * (0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2]);
          a += wx * wy;
        }
      }
      g[y * W + x] = a > 0 ? s / a : 0;
    }
  }
  let hi = 0;
  let lo = 0;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < 8; x++) {
      const bit = g[y * W + x] < g[y * W + x + 1] ? 1 : 0;
      const k = y * 8 + x;
      if (k < 32) hi = (hi | (bit << (31 - k))) >>> 0;
      else lo = (lo | (bit << (63 - k))) >>> 0;
    }
  }
  return [hi, lo];
}

function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

export function hamming(a: [number, number], b: [number, number]): number {
  return popcount32((a[0] ^ b[0]) >>> 0) + popcount32((a[1] ^ b[1]) >>> 0);
}

export const hashHex = (h: [number, number]) => h[0].toString(16).padStart(8, '0') + h[1].toString(16).padStart(8, '0');

export interface Duplicate {
  path: string;
  kind: 'exact' | 'near';
  /** Hamming distance of the dHashes (0 for exact duplicates). */
  distance: number;
}

export interface DuplicateGroup {
  keep: string;
  duplicates: Duplicate[];
}

export interface DedupReport {
  dir: string;
  images: number;
  threshold: number;
  exact: number;
  near: number;
  /** Duplicates whose kept image lies in another top-level folder (class): conflicting labels. */
  crossClass: number;
  groups: DuplicateGroup[];
  unreadable: { path: string; reason: string }[];
  /** Files in image formats CelluScan does not decode (.bmp, .webp, …): not compared. */
  ignored: string[];
  removed: number;
}

export interface DedupOptions {
  /** Max Hamming distance between dHashes for a near duplicate (default 4; 0 still finds re-encoded copies with equal hashes). */
  threshold?: number;
  remove?: boolean;
  warn?: (msg: string) => void;
  progress?: (done: number, total: number) => void;
}

/** Candidate pairs within `t` bits: pigeonhole over t+1 bit-chunks (a pair within t differs in at most t chunks). */
function nearPairs(hashes: ([number, number] | null)[], t: number): Map<number, number[]> {
  const out = new Map<number, number[]>();
  const add = (i: number, j: number) => {
    if (!out.has(i)) out.set(i, []);
    out.get(i)!.push(j);
  };
  const n = hashes.length;
  const k = Math.min(64, t + 1);
  const bitsOf = (h: [number, number], from: number, to: number) => {
    let s = '';
    for (let b = from; b < to; b++) s += b < 32 ? (h[0] >>> (31 - b)) & 1 : (h[1] >>> (63 - b)) & 1;
    return s;
  };
  const seen = new Set<number>();
  for (let c = 0; c < k; c++) {
    const from = Math.floor((c * 64) / k);
    const to = Math.floor(((c + 1) * 64) / k);
    const buckets = new Map<string, number[]>();
    for (let i = 0; i < n; i++) {
      const h = hashes[i];
      if (!h) continue;
      const key = bitsOf(h, from, to);
      const b = buckets.get(key);
      if (b) b.push(i);
      else buckets.set(key, [i]);
    }
    for (const b of buckets.values()) {
      for (let x = 0; x < b.length; x++) {
        for (let y = x + 1; y < b.length; y++) {
          const i = b[x];
          const j = b[y];
          const pk = i * n + j;
          if (seen.has(pk)) continue;
          seen.add(pk);
          if (hamming(hashes[i]!, hashes[j]!) <= t) add(i, j);
        }
      }
    }
  }
  return out;
}

/** Find (and with `remove`, delete) exact and near duplicate images under `dir`. */
export function dedup(dir: string, opts: DedupOptions = {}): DedupReport {
  const threshold = opts.threshold ?? 4;
  if (!Number.isInteger(threshold) || threshold < 0 || threshold > 63) throw new DataError(`dedup threshold must be an integer 0..63, got ${threshold}`);
  const ignored: string[] = [];
  let files: string[];
  try {
    files = walkImages(dir, ignored); // a missing folder, or a file, is an error naming it
  } catch (e) {
    if (e instanceof DataError) throw e;
    throw new DataError(`cannot read folder '${dir}': ${(e as Error).message}`);
  }
  const warn = opts.warn ?? ((m: string) => console.warn(`warning: ${m}`));
  if (ignored.length) warn(`${describeIgnored(ignored)}: not compared`);
  const content: (string | null)[] = [];
  const hashes: ([number, number] | null)[] = [];
  const unreadable: DedupReport['unreadable'] = [];
  files.forEach((f, i) => {
    try {
      const img = decodeImage(new Uint8Array(readFileSync(f)), f);
      content.push(createHash('sha256').update(`${img.width}x${img.height}:`).update(img.data).digest('hex'));
      hashes.push(dHash(img));
    } catch (e) {
      const reason = (e as Error).message.replace(`${f}: `, '');
      unreadable.push({ path: f, reason });
      warn(`skipping unreadable image ${f}: ${reason}`);
      content.push(null);
      hashes.push(null);
    }
    opts.progress?.(i + 1, files.length);
  });
  const near = nearPairs(hashes, threshold);
  const firstWithContent = new Map<string, number>();
  const dupOf = new Int32Array(files.length).fill(-1);
  const groups = new Map<number, Duplicate[]>();
  const addDup = (keep: number, j: number, kind: Duplicate['kind'], distance: number) => {
    dupOf[j] = keep;
    if (!groups.has(keep)) groups.set(keep, []);
    groups.get(keep)!.push({ path: files[j], kind, distance });
  };
  // Exact duplicates first (any earlier image with the same pixels), then near ones of each kept image.
  for (let i = 0; i < files.length; i++) {
    const c = content[i];
    if (c === null) continue;
    const k = firstWithContent.get(c);
    if (k === undefined) firstWithContent.set(c, i);
    else addDup(k, i, 'exact', 0);
  }
  for (let i = 0; i < files.length; i++) {
    if (dupOf[i] >= 0 || content[i] === null) continue;
    for (const j of near.get(i) ?? []) if (dupOf[j] < 0 && j > i) addDup(i, j, 'near', hamming(hashes[i]!, hashes[j]!));
  }
  const top = (p: string) => relative(dir, p).split(/[\\/]/)[0];
  const order = new Map(files.map((f, i) => [f, i]));
  let exact = 0;
  let nearCount = 0;
  let crossClass = 0;
  const out: DuplicateGroup[] = [...groups.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([keep, dups]) => {
      dups.sort((a, b) => order.get(a.path)! - order.get(b.path)!);
      for (const d of dups) {
        if (d.kind === 'exact') exact++;
        else nearCount++;
        if (top(d.path) !== top(files[keep])) crossClass++;
      }
      return { keep: files[keep], duplicates: dups };
    });
  let removed = 0;
  if (opts.remove) {
    for (const g of out) {
      for (const d of g.duplicates) {
        try {
          unlinkSync(d.path);
          removed++;
        } catch (e) {
          throw new DataError(`cannot remove ${d.path}: ${(e as Error).message} (${removed} removed before it)`);
        }
      }
    }
  }
  return { dir, images: files.length, threshold, exact, near: nearCount, crossClass, groups: out, unreadable, ignored, removed };
}

export function formatDedup(r: DedupReport): string {
  const lines: string[] = [];
  const rel = (p: string) => relative(r.dir, p) || p;
  for (const g of r.groups) {
    lines.push(`keep ${rel(g.keep)}`);
    for (const d of g.duplicates) lines.push(`  ${r.removed ? 'removed' : 'dup'} ${d.kind === 'exact' ? 'exact   ' : `near d=${String(d.distance).padEnd(2)}`} ${rel(d.path)}`);
  }
  const n = r.exact + r.near;
  lines.push(
    `${r.images} images in ${r.dir}: ${n} duplicate${n === 1 ? '' : 's'} (${r.exact} exact, ${r.near} near with dHash distance ≤ ${r.threshold}) in ${r.groups.length} group${r.groups.length === 1 ? '' : 's'}` +
      (r.crossClass ? `; ${r.crossClass} across class folders` : '') +
      (r.unreadable.length ? `; ${r.unreadable.length} unreadable skipped` : '') +
      (r.ignored.length ? `; ${describeIgnored(r.ignored)} ignored` : '') +
      (r.removed ? `; removed ${r.removed}` : n ? ' (use --remove to delete them)' : ''),
  );
  return lines.join('\n');
}
