// Decoded, resized (aspect kept + centre-padded to image_size, src/vit/image.ts) 8-bit images, one binary file
// per split, so later epochs and later runs never decode again.
//
// File: <cacheDir>/<slot>-<key>.bin. `slot` hashes what the split is (its source and image_size); `key` also
// hashes every input file's path, size, mtime, ctime and inode, so a changed input gives a new file (the old file of the same
// slot is then deleted). Written to a temp file and renamed into place, so a crash never leaves a half file.
//
//   0   'CSCACHE1'                8 bytes
//   8   u32 version, u32 imageSize, u32 channels, u32 count, u32 recordBytes, u32 metaLength
//   32  f64 metaOffset (little-endian)            … zero padding to 64
//   64  count records of imageSize·imageSize·channels bytes (HWC)
//   metaOffset: JSON { key, id, classes, labels, sourceIndex, skipped, histogram (256 counts per channel) }
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readdirSync, readSync, renameSync, rmSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { prepareImage } from '../vit/image.js';
import { DataError, type Dataset, type Sample } from './data.js';

const MAGIC = 'CSCACHE1';
const VERSION = 1;
const HEADER = 64;
/** Caches up to this size are read into memory; larger ones are read record by record (PrepareOptions.inMemoryLimit). */
export const IN_MEMORY_LIMIT = 1 << 30;

export interface CacheMeta {
  key: string;
  id: string;
  classes: string[];
  labels: number[];
  /** Index of each record in the split it was made from (skipped images leave gaps). */
  sourceIndex: number[];
  skipped: { name: string; reason: string }[];
  /** Per channel, 256 pixel-value counts over all records (mean/std without a pass over the data). */
  histogram: number[][];
}

/** A split at a fixed image_size, uint8 HWC (RGB, or gray for gray sources), in memory or read from its cache file. */
export class PreparedDataset implements Dataset {
  readonly recordBytes: number;
  readonly labels: Int32Array;
  readonly classes: string[];
  readonly id: string;
  readonly paths?: string[];
  private names: string[];
  private fd: number | null;

  constructor(
    readonly imageSize: number,
    readonly channels: number,
    readonly meta: CacheMeta,
    names: string[],
    /** All records in memory, or null to read them from `fd`. */
    private data: Uint8Array | null,
    fd: number | null,
    /** The cache file this came from, if any. */
    readonly cacheFile?: string,
    readonly cacheHit = false,
    paths?: string[],
  ) {
    this.recordBytes = imageSize * imageSize * channels;
    this.labels = Int32Array.from(meta.labels);
    this.classes = meta.classes;
    this.id = `${meta.id}|size${imageSize}`;
    this.names = names;
    this.fd = fd;
    this.paths = paths;
  }
  get length(): number {
    return this.labels.length;
  }
  get skipped(): { name: string; reason: string }[] {
    return this.meta.skipped;
  }
  get sourceIndex(): number[] {
    return this.meta.sourceIndex;
  }
  name(i: number): string {
    return this.names[i] ?? `#${i}`;
  }
  fingerprint(): string {
    return this.meta.key;
  }
  /** Record i's bytes (into `out` when given; a view into memory otherwise when cached in memory). */
  read(i: number, out?: Uint8Array): Uint8Array {
    if (!(i >= 0 && i < this.length)) throw new RangeError(`image index ${i} out of range (0..${this.length - 1})`);
    const n = this.recordBytes;
    if (this.data) {
      const v = this.data.subarray(i * n, (i + 1) * n);
      if (out) {
        out.set(v);
        return out;
      }
      return v;
    }
    if (this.fd === null) throw new DataError(`${this.cacheFile}: cache file already closed`);
    const buf = out ?? new Uint8Array(n);
    const got = readSync(this.fd, buf, 0, n, HEADER + i * n);
    if (got !== n) throw new DataError(`${this.cacheFile}: truncated cache file (record ${i})`);
    return buf;
  }
  get(i: number): Sample {
    return { image: this.read(i).slice(), width: this.imageSize, height: this.imageSize, channels: this.channels, label: this.labels[i] };
  }
  /** Per-channel mean and std of the pixels as [0, 1] values (gray replicated to 3 channels). */
  meanStd(): { mean: number[]; std: number[] } {
    const ms = this.meta.histogram.map((h) => {
      let n = 0, s = 0, s2 = 0;
      for (let v = 0; v < 256; v++) {
        n += h[v];
        s += h[v] * (v / 255);
        s2 += h[v] * (v / 255) ** 2;
      }
      const m = n ? s / n : 0;
      return { m, sd: n ? Math.sqrt(Math.max(0, s2 / n - m * m)) : 0 };
    });
    const get = (c: number) => ms[this.channels === 1 ? 0 : c];
    return { mean: [0, 1, 2].map((c) => get(c).m), std: [0, 1, 2].map((c) => get(c).sd) };
  }
  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** One decoded sample → image_size × image_size uint8 (aspect kept, centre-padded with 0), `channels` channels. */
export function toFixedSize(s: Sample, imageSize: number, channels: number, name = 'image'): Uint8Array {
  let rgb: Uint8Array;
  if (s.channels === 3) rgb = s.image;
  else if (s.channels === 1) {
    rgb = new Uint8Array(s.width * s.height * 3);
    for (let i = 0; i < s.width * s.height; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = s.image[i];
  } else throw new DataError(`${name}: ${s.channels} channels (expected 1 or 3)`);
  const S = imageSize;
  const out = new Uint8Array(S * S * channels);
  if (s.width === S && s.height === S) {
    if (channels === 3) out.set(rgb);
    else for (let i = 0; i < S * S; i++) out[i] = rgb[3 * i];
    return out;
  }
  const p = prepareImage({ width: s.width, height: s.height, data: rgb }, { imageSize: S, name });
  for (let i = 0; i < S * S; i++) {
    for (let c = 0; c < channels; c++) {
      const v = Math.round(p.rgb[i * 3 + c]);
      out[i * channels + c] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return out;
}

export interface PrepareOptions {
  imageSize: number;
  /** A folder for the cache file, or false to keep everything in memory. */
  cacheDir: string | false;
  warn?: (msg: string) => void;
  progress?: (done: number, total: number) => void;
  /** Split name for messages. */
  what?: string;
  /** Cache files up to this many bytes are read into memory, larger ones a record at a time (default 1 GiB). */
  inMemoryLimit?: number;
}

const hash = (s: string) => createHash('sha256').update(s).digest('hex');

function cacheNames(ds: Dataset, imageSize: number): { slot: string; key: string } {
  const slot = hash(`v${VERSION}|${ds.id}|${imageSize}`).slice(0, 12);
  const key = hash(`v${VERSION}|${ds.id}|${imageSize}|${ds.channels}|${ds.fingerprint()}`).slice(0, 24);
  return { slot, key };
}

/** The cache file a split would use (whether or not it exists). */
export function cacheFileFor(ds: Dataset, imageSize: number, cacheDir: string): string {
  const { slot, key } = cacheNames(ds, imageSize);
  return join(cacheDir, `${slot}-${key}.bin`);
}

function namesOf(ds: Dataset, sourceIndex: number[]): string[] {
  return sourceIndex.map((i) => ds.name(i));
}

function openCache(file: string, ds: Dataset, imageSize: number, hit: boolean, inMemoryLimit = IN_MEMORY_LIMIT): PreparedDataset | null {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return null;
  }
  try {
    const size = fstatSync(fd).size;
    const head = new Uint8Array(HEADER);
    if (size < HEADER || readSync(fd, head, 0, HEADER, 0) !== HEADER) throw new Error('short header');
    if (Buffer.from(head.subarray(0, 8)).toString('latin1') !== MAGIC) throw new Error('bad magic');
    const dv = new DataView(head.buffer);
    const [version, S, C, count, rec, metaLen] = [8, 12, 16, 20, 24, 28].map((o) => dv.getUint32(o, true));
    const metaOff = dv.getFloat64(32, true);
    if (version !== VERSION || S !== imageSize || rec !== S * S * C || metaOff !== HEADER + count * rec || metaOff + metaLen !== size) throw new Error('inconsistent header');
    const mb = new Uint8Array(metaLen);
    if (readSync(fd, mb, 0, metaLen, metaOff) !== metaLen) throw new Error('short metadata');
    const meta = JSON.parse(Buffer.from(mb).toString('utf8')) as CacheMeta;
    if (meta.labels.length !== count) throw new Error('label count');
    let data: Uint8Array | null = null;
    if (count * rec <= inMemoryLimit) {
      data = new Uint8Array(count * rec);
      let off = 0;
      while (off < data.length) {
        const got = readSync(fd, data, off, Math.min(data.length - off, 1 << 28), HEADER + off);
        if (got <= 0) throw new Error('short data');
        off += got;
      }
    }
    const paths = ds.paths ? meta.sourceIndex.map((i) => ds.paths![i]) : undefined;
    const p = new PreparedDataset(S, C, meta, namesOf(ds, meta.sourceIndex), data, data ? null : fd, file, hit, paths);
    if (data) closeSync(fd);
    return p;
  } catch {
    closeSync(fd);
    return null; // unreadable or stale: rebuilt
  }
}

/**
 * A split at a fixed image_size: read from its cache file when one matches the inputs, else decoded (corrupt
 * images skipped with a warning each and listed in `skipped`), written to the cache, and returned.
 */
export function prepareDataset(ds: Dataset, opts: PrepareOptions): PreparedDataset {
  const S = opts.imageSize;
  if (!Number.isInteger(S) || S < 1) throw new DataError(`image size must be a positive integer, got ${S}`);
  const what = opts.what ?? 'data';
  const warn = opts.warn ?? ((m: string) => console.warn(`warning: ${m}`));
  const C = ds.channels;
  let file: string | undefined;
  if (opts.cacheDir) {
    file = cacheFileFor(ds, S, opts.cacheDir);
    const hit = openCache(file, ds, S, true, opts.inMemoryLimit);
    if (hit) {
      for (const s of hit.skipped) warn(`${what}: skipped corrupt image ${s.name}: ${s.reason} (recorded in the cache)`);
      return hit;
    }
  }
  // Decode, streaming records to the temp file (or memory).
  const rec = S * S * C;
  let fd: number | null = null;
  let tmp: string | undefined;
  if (opts.cacheDir && file) {
    try {
      mkdirSync(opts.cacheDir, { recursive: true });
      removeStaleTemps(opts.cacheDir);
      tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
      fd = openSync(tmp, 'w');
    } catch (e) {
      warn(`cannot write the image cache in ${opts.cacheDir} (${(e as Error).message}); keeping ${what} in memory`);
      fd = null;
      tmp = undefined;
    }
  }
  const mem: Uint8Array[] = [];
  const sourceIndex: number[] = [];
  const labels: number[] = [];
  const skipped: { name: string; reason: string }[] = [];
  const histogram = Array.from({ length: C }, () => new Array(256).fill(0));
  const CHUNK = 64;
  let chunk = new Uint8Array(CHUNK * rec);
  let inChunk = 0;
  let written = 0;
  const flush = () => {
    if (!inChunk) return;
    if (fd !== null) {
      const bytes = chunk.subarray(0, inChunk * rec);
      let off = 0;
      while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off, HEADER + written * rec + off);
    } else mem.push(chunk.slice(0, inChunk * rec));
    written += inChunk;
    inChunk = 0;
  };
  try {
    for (let i = 0; i < ds.length; i++) {
      let img: Uint8Array;
      try {
        img = toFixedSize(ds.get(i), S, C, ds.name(i));
      } catch (e) {
        const reason = (e as Error).message.replace(`${ds.name(i)}: `, '');
        skipped.push({ name: ds.name(i), reason });
        warn(`${what}: skipping corrupt image ${ds.name(i)}: ${reason}`);
        continue;
      }
      for (let p = 0; p < S * S; p++) for (let c = 0; c < C; c++) histogram[c][img[p * C + c]]++;
      chunk.set(img, inChunk * rec);
      inChunk++;
      sourceIndex.push(i);
      labels.push(ds.labels[i]);
      if (inChunk === CHUNK) flush();
      if (opts.progress && (i % 256 === 255 || i === ds.length - 1)) opts.progress(i + 1, ds.length);
    }
    flush();
    if (!sourceIndex.length) throw new DataError(`${what}: none of its ${ds.length} images could be decoded (first: ${skipped[0]?.name}: ${skipped[0]?.reason})`);
    const meta: CacheMeta = { key: file ?? 'memory', id: ds.id, classes: ds.classes, labels, sourceIndex, skipped, histogram };
    const paths = ds.paths ? sourceIndex.map((i) => ds.paths![i]) : undefined;
    if (fd !== null && tmp && file) {
      const mb = Buffer.from(JSON.stringify(meta), 'utf8');
      const metaOff = HEADER + written * rec;
      writeSync(fd, mb, 0, mb.length, metaOff);
      const head = Buffer.alloc(HEADER);
      head.write(MAGIC, 0, 'latin1');
      [VERSION, S, C, written, rec, mb.length].forEach((v, k) => head.writeUInt32LE(v, 8 + 4 * k));
      head.writeDoubleLE(metaOff, 32);
      writeSync(fd, head, 0, HEADER, 0);
      closeSync(fd);
      fd = null;
      renameSync(tmp, file);
      tmp = undefined;
      removeStale(opts.cacheDir as string, file);
      const p = openCache(file, ds, S, false, opts.inMemoryLimit);
      if (!p) throw new DataError(`${file}: the cache file just written cannot be read back`);
      return p;
    }
    const all = new Uint8Array(written * rec);
    let off = 0;
    for (const m of mem) {
      all.set(m, off);
      off += m.length;
    }
    chunk = new Uint8Array(0);
    return new PreparedDataset(S, C, meta, namesOf(ds, sourceIndex), all, null, undefined, false, paths);
  } finally {
    if (fd !== null) closeSync(fd);
    if (tmp && existsSync(tmp)) rmSync(tmp, { force: true });
  }
}

/** Delete the other cache files of the same slot (older inputs of the same split and image size), and stale temp files. */
function removeStale(dir: string, keep: string): void {
  const base = keep.slice(dir.length + 1);
  const slot = base.slice(0, base.indexOf('-'));
  for (const f of readdirSync(dir)) {
    if (f !== base && f.startsWith(`${slot}-`) && f.endsWith('.bin')) {
      try {
        unlinkSync(join(dir, f));
      } catch {
        /* another process may have removed it */
      }
    }
  }
  removeStaleTemps(dir);
}

/** A temp file untouched this long is no one's (a live writer writes a chunk every few dozen images). */
export const STALE_TEMP_MS = 60 * 60 * 1000;

/** Whether process `pid` runs on this machine (EPERM: it runs, as another user). */
function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Delete the temp files (`<slot>-<key>.bin.tmp-<pid>-<rand>`) that a writer left behind when it was stopped (Ctrl-C,
 * a crash) mid-write: those whose writer pid no longer runs, or untouched for STALE_TEMP_MS (a reused pid). A temp file
 * a live process is writing is kept. Returns the names deleted.
 */
export function removeStaleTemps(dir: string, now = Date.now()): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return removed;
  }
  for (const f of names) {
    const m = /\.bin\.tmp-(\d+)-[0-9a-z]*$/.exec(f);
    if (!m) continue;
    const path = join(dir, f);
    try {
      const pid = Number(m[1]);
      if (pidAlive(pid) && now - statSync(path).mtimeMs < STALE_TEMP_MS) continue;
      unlinkSync(path);
      removed.push(f);
    } catch {
      /* gone already, or not ours to delete */
    }
  }
  return removed;
}
