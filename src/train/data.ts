// Datasets for training: ImageFolder trees (torchvision's ordering), Fashion-MNIST's IDX files, seeded stratified
// splits and subsets, and the stage that turns them into fixed-size Float32 CHW normalised batches.
//
//   const data = loadData({ data: 'DATA', imageSize: 224, seed: 0 });        // decodes once, then cached
//   for (const b of batches(data.train, { batchSize: 32, epoch, seed, shuffle: true, augment: true,
//                                         mean: data.mean, std: data.std })) { b.x; b.y; }
//
// Layouts for `data`:
//   DATA/train/<class>/*.png|jpg [+ DATA/val/<class>/…] [+ DATA/test/<class>/…]   (no val/: valFraction of train)
//   DATA/<class>/*.png|jpg                                                        (valFraction → val)
//   'fashion-mnist' or 'fashion-mnist:DIR'    Debian's /usr/share/datasets/fashion-mnist (train → train+val, t10k → test)
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { decodeImage } from '../vit/decode.js';
import { IMAGE_EXTENSIONS, IMAGENET_MEAN, IMAGENET_STD } from '../vit/image.js';
import { augment as augmentImage, mixSeed, Rng, type U8Image } from './augment.js';
import { FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, readFashionMnist } from './idx.js';
import type { PreparedDataset } from './cache.js';

export class DataError extends Error {
  override name = 'DataError';
}

/** One image and its label. */
export interface Sample {
  /** 8-bit pixels, row-major HWC: width·height·channels bytes (RGB or gray). */
  image: Uint8Array;
  width: number;
  height: number;
  channels: number;
  label: number;
}

export interface Dataset {
  readonly classes: string[];
  readonly length: number;
  /** Every item's label, known without decoding. */
  readonly labels: Int32Array;
  /** Channels of the decoded images (3: RGB, 1: gray). */
  readonly channels: number;
  /** Files, for datasets read from an image folder. */
  readonly paths?: string[];
  /** Decode item i (throws an Error naming the file when it is corrupt). */
  get(i: number): Sample;
  /** A readable name for item i (its file, or 'fashion-mnist train #12'). */
  name(i: number): string;
  /** Stable identity of this list of items (where they come from, not their contents). */
  readonly id: string;
  /** Identity of the contents: changes when an input file changes (size, mtime, ctime or inode). */
  fingerprint(): string;
}

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

// -----------------------------------------------------------------------------------------------------------------
// ImageFolder

/** Python's default str ordering: by Unicode code point (JS's < compares UTF-16 code units). */
export function comparePython(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const ca = a.codePointAt(i)!;
    const cb = b.codePointAt(j)!;
    if (ca !== cb) return ca - cb;
    i += ca > 0xffff ? 2 : 1;
    j += cb > 0xffff ? 2 : 1;
  }
  return a.length - i - (b.length - j);
}

export const sortPython = (xs: string[]): string[] => xs.sort(comparePython);

/**
 * The extensions of the files taken for images (matched case-insensitively, as torchvision does): only the formats
 * decodeImage() reads (PNG, JPEG), the same list `predict` expands a folder with. torchvision's IMG_EXTENSIONS also
 * has .ppm .bmp .pgm .tif .tiff .webp, but counting files that cannot be decoded would make every count (data info,
 * balance's --min-per-class) promise images that training then cannot read.
 */
export const IMG_EXTENSIONS: readonly string[] = IMAGE_EXTENSIONS;

/** Image formats CelluScan does not decode: such files are reported (see describeIgnored), never counted. */
export const UNDECODED_IMAGE_EXTENSIONS: readonly string[] = ['.bmp', '.gif', '.pgm', '.ppm', '.tif', '.tiff', '.webp'];

const extensionIn = (name: string, list: readonly string[]) => {
  const l = name.toLowerCase();
  return list.find((e) => l.endsWith(e));
};

export const hasImageExtension = (name: string) => extensionIn(name, IMG_EXTENSIONS) !== undefined;

/** The (lower-case) extension of an image file in a format CelluScan does not decode, else undefined. */
export const undecodedImageExtension = (name: string) => (hasImageExtension(name) ? undefined : extensionIn(name, UNDECODED_IMAGE_EXTENSIONS));

/** '3 files in formats CelluScan does not decode (.bmp, .webp)' for the ignored files of a listing. */
export function describeIgnored(paths: readonly string[]): string {
  const exts = [...new Set(paths.map((p) => undecodedImageExtension(p) ?? p.slice(p.lastIndexOf('.')).toLowerCase()))].sort();
  return `${paths.length} file${paths.length === 1 ? '' : 's'} in format${exts.length === 1 ? '' : 's'} CelluScan does not decode (${exts.join(', ')})`;
}

/** The cache folder loadData() puts inside a data folder; never taken for a class. */
export const CACHE_DIRNAME = '.celluscan-cache';

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory(); // follows symlinks, like os.scandir's is_dir()
  } catch {
    return false;
  }
}

function requireDir(p: string, what: string): void {
  if (!existsSync(p)) throw new DataError(`${what} '${p}' does not exist`);
  if (!isDir(p)) throw new DataError(`${what} '${p}' is not a folder`);
}

/** torchvision's find_classes: the sub-folders, sorted. */
export function findClasses(root: string): string[] {
  requireDir(root, 'image folder');
  const classes = sortPython(readdirSync(root).filter((n) => n !== CACHE_DIRNAME && isDir(join(root, n))));
  if (!classes.length) throw new DataError(`no class folders in '${root}' (expected one sub-folder of images per class)`);
  return classes;
}

/**
 * Image files under a folder as torchvision's make_dataset lists them: sorted(os.walk(...)), then sorted names.
 * Only PNG/JPEG files (IMG_EXTENSIONS) are listed; files in other image formats go to `ignored` when it is given.
 * The folder must exist (a DataError names it otherwise), as must every sub-folder be readable.
 */
export function walkImages(dir: string, ignored?: string[]): string[] {
  requireDir(dir, 'image folder');
  const roots: [string, string[]][] = [];
  const visit = (d: string, seen: Set<string>) => {
    let id: string;
    try {
      const st = statSync(d);
      id = `${st.dev}:${st.ino}`;
    } catch {
      return;
    }
    if (seen.has(id)) return; // a symlink loop
    seen.add(id);
    const files: string[] = [];
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const why = err.code === 'EACCES' ? 'permission denied' : err.code === 'ENOTDIR' ? 'not a folder' : err.message;
      throw new DataError(`cannot read folder '${d}': ${why}`);
    }
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory() || (e.isSymbolicLink() && isDir(p))) visit(p, new Set(seen));
      else files.push(e.name);
    }
    roots.push([d, files]);
  };
  visit(dir, new Set());
  roots.sort((a, b) => comparePython(a[0], b[0]));
  const out: string[] = [];
  for (const [d, files] of roots) {
    for (const f of sortPython(files)) {
      if (hasImageExtension(f)) out.push(join(d, f));
      else if (ignored && undecodedImageExtension(f)) ignored.push(join(d, f));
    }
  }
  return out;
}

export interface FolderListing {
  root: string;
  classes: string[];
  paths: string[];
  labels: Int32Array;
  /** Files in image formats CelluScan does not decode (.bmp, .webp, …): not listed, not counted. */
  ignored: string[];
}

/**
 * List an ImageFolder tree exactly as torchvision.datasets.ImageFolder does. `classes` (a training split's)
 * maps folder names to labels for a val/test split; its folders must all be known classes.
 */
export function listImageFolder(root: string, classes?: string[]): FolderListing {
  const found = findClasses(root);
  const cls = classes ?? found;
  if (classes) {
    const unknown = found.filter((c) => !classes.includes(c));
    if (unknown.length) throw new DataError(`'${root}' has class folders the training set lacks: ${unknown.join(', ')}`);
  }
  const paths: string[] = [];
  const labels: number[] = [];
  const empty: string[] = [];
  const ignored: string[] = [];
  const emptyIgnored: string[] = [];
  for (const c of found) {
    const skip: string[] = [];
    const files = walkImages(join(root, c), skip);
    ignored.push(...skip);
    if (!files.length) {
      empty.push(c);
      emptyIgnored.push(...skip);
    }
    const label = cls.indexOf(c);
    for (const f of files) {
      paths.push(f);
      labels.push(label);
    }
  }
  if (empty.length) {
    const also = emptyIgnored.length ? `; ${describeIgnored(emptyIgnored)}` : '';
    throw new DataError(`empty class folder${empty.length > 1 ? 's' : ''} in '${root}': ${empty.map((c) => `'${c}'`).join(', ')} (no ${IMG_EXTENSIONS.join(' ')} files${also})`);
  }
  return { root, classes: cls, paths, labels: Int32Array.from(labels), ignored };
}

export class FolderDataset implements Dataset {
  readonly channels = 3;
  readonly id: string;
  private fp?: string;
  constructor(
    readonly classes: string[],
    readonly paths: string[],
    readonly labels: Int32Array,
    root: string,
    /** Files in image formats CelluScan does not decode, left out of the dataset. */
    readonly ignored: string[] = [],
  ) {
    this.id = `folder:${resolve(root)}`;
  }
  static open(root: string, classes?: string[]): FolderDataset {
    const l = listImageFolder(root, classes);
    return new FolderDataset(l.classes, l.paths, l.labels, root, l.ignored);
  }
  get length(): number {
    return this.paths.length;
  }
  name(i: number): string {
    return this.paths[i];
  }
  get(i: number): Sample {
    const p = this.paths[i];
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(readFileSync(p));
    } catch (e) {
      throw new DataError(`${p}: cannot read (${(e as Error).message})`);
    }
    const img = decodeImage(bytes, p);
    return { image: img.data, width: img.width, height: img.height, channels: 3, label: this.labels[i] };
  }
  fingerprint(): string {
    if (!this.fp) {
      const h = createHash('sha256');
      h.update(JSON.stringify(this.classes));
      for (let i = 0; i < this.paths.length; i++) {
        let st = 'missing';
        try {
          const s = statSync(this.paths[i]);
          st = `${s.size}:${s.mtimeMs}:${s.ctimeMs}:${s.ino}`; // ctime: a copy that restores the mtime (cp -p, rsync -a) still changes it
        } catch {
          /* a vanished file changes the fingerprint */
        }
        h.update(`${this.paths[i]}\0${this.labels[i]}\0${st}\n`);
      }
      this.fp = h.digest('hex');
    }
    return this.fp;
  }
}

// -----------------------------------------------------------------------------------------------------------------
// In-memory gray/RGB arrays (Fashion-MNIST)

export class ArrayDataset implements Dataset {
  readonly labels: Int32Array;
  constructor(
    readonly classes: string[],
    private readonly pixels: Uint8Array,
    labels: ArrayLike<number>,
    readonly width: number,
    readonly height: number,
    readonly channels: number,
    readonly id: string,
    private readonly fp: string,
  ) {
    this.labels = Int32Array.from(labels);
    if (pixels.length !== this.labels.length * width * height * channels) {
      throw new DataError(`${id}: ${pixels.length} pixel bytes do not hold ${this.labels.length} images of ${width}×${height}×${channels}`);
    }
  }
  get length(): number {
    return this.labels.length;
  }
  name(i: number): string {
    return `${this.id} #${i}`;
  }
  get(i: number): Sample {
    const n = this.width * this.height * this.channels;
    return { image: this.pixels.subarray(i * n, (i + 1) * n), width: this.width, height: this.height, channels: this.channels, label: this.labels[i] };
  }
  fingerprint(): string {
    return this.fp;
  }
}

/** Fashion-MNIST's train (60000) or test (10000) split as a gray 28×28 dataset with its 10 class names. */
export function fashionMnist(split: 'train' | 'test', dir = FASHION_MNIST_DIR): ArrayDataset {
  const d = readFashionMnist(split, dir);
  const fp = sha(d.files.map((f) => `${resolve(f)}:${statSync(f).size}:${statSync(f).mtimeMs}`).join('\n'));
  return new ArrayDataset([...FASHION_MNIST_CLASSES], d.images, d.labels, d.cols, d.rows, 1, `fashion-mnist:${resolve(dir)}:${split}`, fp);
}

// -----------------------------------------------------------------------------------------------------------------
// Subsets and splits

export class SubsetDataset implements Dataset {
  readonly labels: Int32Array;
  readonly indices: Int32Array;
  readonly id: string;
  constructor(
    readonly base: Dataset,
    indices: ArrayLike<number>,
    tag: string,
  ) {
    this.indices = Int32Array.from(indices);
    this.labels = this.indices.map((i) => base.labels[i]);
    this.id = `${base.id}|${tag}`;
  }
  get classes(): string[] {
    return this.base.classes;
  }
  get channels(): number {
    return this.base.channels;
  }
  get length(): number {
    return this.indices.length;
  }
  get paths(): string[] | undefined {
    const p = this.base.paths;
    return p ? Array.from(this.indices, (i) => p[i]) : undefined;
  }
  name(i: number): string {
    return this.base.name(this.indices[i]);
  }
  get(i: number): Sample {
    return this.base.get(this.indices[i]);
  }
  fingerprint(): string {
    return sha(`${this.base.fingerprint()}|${this.id}|${sha(Array.from(this.indices).join(','))}`);
  }
}

function byClass(labels: ArrayLike<number>): Map<number, number[]> {
  const m = new Map<number, number[]>();
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (!m.has(l)) m.set(l, []);
    m.get(l)!.push(i);
  }
  return new Map([...m.entries()].sort((a, b) => a[0] - b[0]));
}

function checkFraction(f: number, what: string, allowZero: boolean): void {
  if (!(Number.isFinite(f) && (allowZero ? f >= 0 : f > 0) && f <= 1)) throw new DataError(`${what} must be in ${allowZero ? '[0' : '(0'}, 1], got ${f}`);
}

/** A validation fraction: in [0, 1) (1 would hold out every image of a class but one, leaving nothing to train on). */
function checkValFraction(f: number): void {
  if (!(Number.isFinite(f) && f >= 0 && f < 1)) {
    throw new DataError(`--val-fraction must be in [0, 1) (the fraction of each class held out for validation; 0: none), got ${f}`);
  }
}

/**
 * Stratified split: from each class, round(n·fraction) items (at least 1 when the class has 2 or more and the
 * fraction is > 0, never the whole class) go to `val`, chosen by a seeded shuffle. Both lists ascending.
 */
export function stratifiedSplit(labels: ArrayLike<number>, fraction: number, seed: number): { train: number[]; val: number[] } {
  checkValFraction(fraction);
  const train: number[] = [];
  const val: number[] = [];
  for (const [label, idx] of byClass(labels)) {
    const rng = new Rng(mixSeed(seed, 0x5a1, label));
    const n = idx.length;
    let k = Math.round(n * fraction);
    if (fraction > 0 && n >= 2) k = Math.max(1, k);
    k = Math.min(k, n - 1);
    const sh = rng.shuffle([...idx]);
    val.push(...sh.slice(0, k));
    train.push(...sh.slice(k));
  }
  return { train: train.sort((a, b) => a - b), val: val.sort((a, b) => a - b) };
}

/** Stratified seeded subset: max(1, round(n·fraction)) items of each class; ascending. */
export function stratifiedSubset(labels: ArrayLike<number>, fraction: number, seed: number): number[] {
  checkFraction(fraction, 'subset', false);
  const out: number[] = [];
  for (const [label, idx] of byClass(labels)) {
    if (fraction >= 1) {
      out.push(...idx);
      continue;
    }
    const rng = new Rng(mixSeed(seed, 0x5b5, label));
    const k = Math.max(1, Math.round(idx.length * fraction));
    out.push(...rng.shuffle([...idx]).slice(0, k));
  }
  return out.sort((a, b) => a - b);
}

/** Items per class. */
export function classCounts(ds: { labels: ArrayLike<number>; classes: string[] }): number[] {
  const c = new Array(ds.classes.length).fill(0);
  for (let i = 0; i < ds.labels.length; i++) c[ds.labels[i]]++;
  return c;
}

// -----------------------------------------------------------------------------------------------------------------
// Opening a data source

export interface SplitOptions {
  /** A folder, or 'fashion-mnist' / 'fashion-mnist:DIR'. */
  data: string;
  /** Fraction of the training images held out for validation when there is no val/ folder (default 0.1; 0: none). */
  valFraction?: number;
  /** Seeds the split and the subset (default 0). */
  seed?: number;
  /** Stratified fraction of every split to use (e.g. 0.05, 0.2; default 1). */
  subset?: number;
}

export interface RawSplits {
  classes: string[];
  train: Dataset;
  val?: Dataset;
  test?: Dataset;
  /** How the source was read, for logs. */
  layout: string;
  /** Files in image formats CelluScan does not decode (.bmp, .webp, …) found in the folders: left out. */
  ignored: string[];
}

export function isFashionMnist(data: string): boolean {
  return data === 'fashion-mnist' || data.startsWith('fashion-mnist:');
}

/** Find the splits of a data source (lists files; decodes nothing). */
export function openSplits(opts: SplitOptions): RawSplits {
  const seed = opts.seed ?? 0;
  const valFraction = opts.valFraction ?? 0.1;
  checkValFraction(valFraction);
  let train: Dataset;
  let val: Dataset | undefined;
  let test: Dataset | undefined;
  let layout: string;
  let needSplit = false;
  const ignored: string[] = [];
  if (isFashionMnist(opts.data)) {
    const dir = opts.data.includes(':') ? opts.data.slice(opts.data.indexOf(':') + 1) : FASHION_MNIST_DIR;
    train = fashionMnist('train', dir);
    test = fashionMnist('test', dir);
    needSplit = true;
    layout = `Fashion-MNIST IDX files in ${dir}`;
  } else {
    const ign = (d: Dataset | undefined) => (d instanceof FolderDataset ? d.ignored : []);
    const root = opts.data;
    requireDir(root, 'data folder');
    if (isDir(join(root, 'train'))) {
      train = FolderDataset.open(join(root, 'train'));
      if (isDir(join(root, 'val'))) val = FolderDataset.open(join(root, 'val'), train.classes);
      else needSplit = true;
      if (isDir(join(root, 'test'))) test = FolderDataset.open(join(root, 'test'), train.classes);
      layout = `image folders ${root}/train${val ? ', val' : ''}${test ? ', test' : ''}`;
    } else {
      train = FolderDataset.open(root);
      needSplit = true;
      layout = `one image folder ${root}`;
    }
    ignored.push(...ign(train), ...ign(val), ...ign(test));
  }
  if (needSplit && valFraction > 0) {
    const s = stratifiedSplit(train.labels, valFraction, seed);
    const base = train;
    val = new SubsetDataset(base, s.val, `val(${valFraction},${seed})`);
    train = new SubsetDataset(base, s.train, `train(${valFraction},${seed})`);
    layout += `, val = ${valFraction} of train (stratified, seed ${seed})`;
  }
  const subset = opts.subset ?? 1;
  checkFraction(subset, 'subset', false);
  if (subset < 1) {
    const sub = (d: Dataset | undefined) => (d ? new SubsetDataset(d, stratifiedSubset(d.labels, subset, seed), `subset(${subset},${seed})`) : undefined);
    train = sub(train)!;
    val = sub(val);
    test = sub(test);
    layout += `, subset ${subset} of each split (stratified, seed ${seed})`;
  }
  return { classes: train.classes, train, val, test, layout, ignored };
}

// -----------------------------------------------------------------------------------------------------------------
// Fixed-size data, mean/std and batches

export interface SkippedImage {
  split?: string;
  name: string;
  reason: string;
}

export interface LoadOptions extends SplitOptions {
  imageSize: number;
  /** Per-channel normalisation; computed from the training set when not given. */
  mean?: number[];
  std?: number[];
  /** Where decoded images are cached: a folder, or false for none (default: DATA/.celluscan-cache, or ~/.cache/celluscan). */
  cacheDir?: string | false;
  warn?: (msg: string) => void;
  progress?: (split: string, done: number, total: number) => void;
}

export interface DataBundle {
  classes: string[];
  train: PreparedDataset;
  val?: PreparedDataset;
  test?: PreparedDataset;
  mean: number[];
  std: number[];
  /** Whether mean/std came from the training set (else given). */
  meanStdFromData: boolean;
  skipped: SkippedImage[];
  layout: string;
  cache: { split: string; file?: string; hit: boolean }[];
  close(): void;
}

/** Default cache folder: inside the data folder, or the user's cache for Fashion-MNIST (system files). */
export function defaultCacheDir(data: string): string {
  if (!isFashionMnist(data)) return join(data, CACHE_DIRNAME);
  const base = process.env.XDG_CACHE_HOME || join(process.env.HOME || '/tmp', '.cache');
  return join(base, 'celluscan');
}

/** Open, decode (or read from the cache) and size every split; mean/std from the training set unless given. */
export async function loadData(opts: LoadOptions): Promise<DataBundle> {
  const { prepareDataset } = await import('./cache.js');
  const raw = openSplits(opts);
  const cacheDir = opts.cacheDir === undefined ? defaultCacheDir(opts.data) : opts.cacheDir;
  const warn = opts.warn ?? ((m: string) => console.warn(`warning: ${m}`));
  if (raw.ignored.length) warn(`${describeIgnored(raw.ignored)}: ignored`);
  const skipped: SkippedImage[] = [];
  const cache: DataBundle['cache'] = [];
  const prep = (split: string, ds: Dataset | undefined) => {
    if (!ds) return undefined;
    const p = prepareDataset(ds, {
      imageSize: opts.imageSize,
      cacheDir,
      warn,
      progress: opts.progress ? (d, t) => opts.progress!(split, d, t) : undefined,
      what: split,
    });
    for (const s of p.skipped) skipped.push({ split, ...s });
    cache.push({ split, file: p.cacheFile, hit: p.cacheHit });
    return p;
  };
  const train = prep('train', raw.train)!;
  const val = prep('val', raw.val);
  const test = prep('test', raw.test);
  let mean = opts.mean;
  let std = opts.std;
  const meanStdFromData = !mean || !std;
  if (!mean || !std) {
    const ms = train.meanStd();
    mean ??= ms.mean;
    std ??= ms.std;
  }
  if (mean.length !== 3 || std.length !== 3) throw new DataError(`mean and std need 3 values (R, G, B), got ${mean.length} and ${std.length}`);
  if (std.some((s) => !(s > 0))) throw new DataError(`std values must be > 0, got [${std.join(', ')}]`);
  return {
    classes: raw.classes,
    train,
    val,
    test,
    mean,
    std,
    meanStdFromData,
    skipped,
    layout: raw.layout,
    cache,
    close: () => [train, val, test].forEach((d) => d?.close()),
  };
}

/**
 * One split only (e.g. for evaluating on test without decoding train), at a fixed size, through the cache.
 * mean/std are not computed here: pass the model's.
 */
export async function loadSplit(opts: Omit<LoadOptions, 'mean' | 'std'> & { split: 'train' | 'val' | 'test' }): Promise<{ classes: string[]; data: PreparedDataset; skipped: SkippedImage[]; layout: string }> {
  const { prepareDataset } = await import('./cache.js');
  const raw = openSplits(opts);
  if (raw.ignored.length) (opts.warn ?? ((m: string) => console.warn(`warning: ${m}`)))(`${describeIgnored(raw.ignored)}: ignored`);
  const ds = raw[opts.split];
  if (!ds) {
    const have = (['train', 'val', 'test'] as const).filter((s) => raw[s]);
    throw new DataError(`the data has no ${opts.split} split (it has ${have.join(', ')})`);
  }
  const data = prepareDataset(ds, {
    imageSize: opts.imageSize,
    cacheDir: opts.cacheDir === undefined ? defaultCacheDir(opts.data) : opts.cacheDir,
    warn: opts.warn,
    progress: opts.progress ? (d, t) => opts.progress!(opts.split, d, t) : undefined,
    what: opts.split,
  });
  return { classes: raw.classes, data, skipped: data.skipped.map((s) => ({ split: opts.split, ...s })), layout: raw.layout };
}

export { IMAGENET_MEAN, IMAGENET_STD };

export interface BatchOptions {
  mean: readonly number[];
  std: readonly number[];
  /**
   * The training augmentation: true for flip + TrivialAugmentWide, a function for another transform of each
   * image (given its dataset index); false for --no-augment and for eval.
   */
  augment?: boolean | ((img: U8Image, index: number) => U8Image);
  /** Seed and epoch: sample i of epoch e is augmented with Rng(mixSeed(seed, e, i)). */
  seed?: number;
  epoch?: number;
}

export interface Batch {
  /** [size, 3, imageSize, imageSize] normalised float32 (gray images replicated to 3 channels). */
  x: Float32Array;
  y: Int32Array;
  /** The dataset indices in this batch. */
  indices: number[];
  size: number;
  imageSize: number;
}

/** Normalise a uint8 HWC image (1 or 3 channels) into `out` at `offset` as 3×S×S CHW: (v/255 − mean)/std. */
export function normaliseInto(img: Uint8Array, S: number, channels: number, mean: readonly number[], std: readonly number[], out: Float32Array, offset: number): void {
  const n = S * S;
  for (let c = 0; c < 3; c++) {
    const a = 1 / (255 * std[c]);
    const b = -mean[c] / std[c];
    const src = channels === 1 ? 0 : c;
    const o = offset + c * n;
    for (let i = 0; i < n; i++) out[o + i] = img[i * channels + src] * a + b;
  }
}

/** One batch of `indices` from a fixed-size dataset. */
export function makeBatch(ds: PreparedDataset, indices: number[], opts: BatchOptions): Batch {
  const S = ds.imageSize;
  const C = ds.channels;
  const per = 3 * S * S;
  const x = new Float32Array(indices.length * per);
  const y = new Int32Array(indices.length);
  const buf = new Uint8Array(S * S * C);
  indices.forEach((idx, b) => {
    let img = ds.read(idx, buf);
    if (typeof opts.augment === 'function') {
      img = opts.augment({ data: img, width: S, height: S, channels: C }, idx).data;
    } else if (opts.augment) {
      const rng = new Rng(mixSeed(opts.seed ?? 0, opts.epoch ?? 0, idx));
      img = augmentImage({ data: img, width: S, height: S, channels: C }, rng).image.data;
    }
    normaliseInto(img, S, C, opts.mean, opts.std, x, b * per);
    y[b] = ds.labels[idx];
  });
  return { x, y, indices, size: indices.length, imageSize: S };
}

export interface EpochOptions extends BatchOptions {
  batchSize: number;
  /** Shuffle with Rng(mixSeed(seed, epoch)) (default true). */
  shuffle?: boolean;
  /** Drop a last, smaller batch (default false). */
  dropLast?: boolean;
}

/** The order of one epoch's items. */
export function epochOrder(length: number, opts: { shuffle?: boolean; seed?: number; epoch?: number }): number[] {
  const order = Array.from({ length }, (_, i) => i);
  if (opts.shuffle ?? true) new Rng(mixSeed(opts.seed ?? 0, 0xe90c, opts.epoch ?? 0)).shuffle(order);
  return order;
}

export function numBatches(length: number, batchSize: number, dropLast = false): number {
  return dropLast ? Math.floor(length / batchSize) : Math.ceil(length / batchSize);
}

/** One epoch of batches. */
export function* batches(ds: PreparedDataset, opts: EpochOptions): Generator<Batch> {
  if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) throw new DataError(`batch size must be a positive integer, got ${opts.batchSize}`);
  const order = epochOrder(ds.length, opts);
  const nb = numBatches(ds.length, opts.batchSize, opts.dropLast);
  for (let b = 0; b < nb; b++) yield makeBatch(ds, order.slice(b * opts.batchSize, (b + 1) * opts.batchSize), opts);
}
