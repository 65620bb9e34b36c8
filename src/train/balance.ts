// Class balancing for an ImageFolder training set: every class with fewer than `minPerClass` images is topped up
// with augmented copies of its own images (random horizontal flip + TrivialAugmentWide, seeded), cycling through
// its images in sorted order; every image (all of a majority class) is copied as it is.
//
// OUT/<class>/<same relative path as in DIR>            the originals
// OUT/<class>/<source path without extension>_aug<k>.png  the k-th augmented copy of that source
//
// Files in image formats CelluScan does not decode (.bmp, .webp, …) are neither counted nor copied (the report says
// how many). OUT is written atomically: everything goes into a hidden sibling folder `.OUT.partial-<pid>-<8 hex>`,
// renamed to OUT only when every class is done, and removed on any failure, so a failed run leaves no half-written OUT.
// `balanceAsync` (what the CLI runs) also removes it on SIGINT/SIGTERM, and every run first removes the partial folders
// of OUT whose process is gone (a run killed by SIGKILL or a power loss could not clean up after itself).
import { copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, extname, join, relative, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pngjs from 'pngjs';
import { decodeImage } from '../vit/decode.js';
import type { RgbImage } from '../vit/image.js';
import { augment, mixSeed, Rng } from './augment.js';
import { DataError, describeIgnored, listImageFolder } from './data.js';

export interface BalanceOptions {
  minPerClass: number;
  out: string;
  seed?: number;
  warn?: (msg: string) => void;
  progress?: (cls: string, done: number, total: number) => void;
  /** One-line notes (a stale partial folder removed); default: stderr. */
  note?: (msg: string) => void;
}

export interface BalanceAsyncOptions extends BalanceOptions {
  /**
   * Install SIGINT and SIGTERM handlers for the run (default true): on either, the run stops at the next file, removes
   * its partial folder and rejects with a BalanceInterrupted. The handlers are removed when the run ends, however it ends.
   */
  handleSignals?: boolean;
}

/** A balance run stopped by a signal: nothing was written (the partial folder is removed). */
export class BalanceInterrupted extends DataError {
  /** 128 + the signal's number, the shell's status for a process killed by it (130 for SIGINT, 143 for SIGTERM). */
  readonly exitCode: number;
  constructor(
    readonly signal: 'SIGINT' | 'SIGTERM',
    out: string,
  ) {
    super(`interrupted by ${signal}: nothing was written to '${out}'`);
    this.name = 'BalanceInterrupted';
    this.exitCode = signal === 'SIGINT' ? 130 : 143;
  }
}

export interface ClassBalance {
  name: string;
  before: number;
  copied: number;
  generated: number;
  after: number;
  /** Sources that could not be decoded (copied, but not used for augmentation). */
  unreadable: string[];
}

export interface BalanceReport {
  dir: string;
  out: string;
  minPerClass: number;
  seed: number;
  classes: ClassBalance[];
  copied: number;
  generated: number;
  /** Files in image formats CelluScan does not decode: not counted, not copied. */
  ignored: string[];
}

/** An RGB image as PNG bytes. */
export function encodePng(img: RgbImage): Buffer {
  const p = new pngjs.PNG({ width: img.width, height: img.height });
  for (let i = 0; i < img.width * img.height; i++) {
    p.data[4 * i] = img.data[3 * i];
    p.data[4 * i + 1] = img.data[3 * i + 1];
    p.data[4 * i + 2] = img.data[3 * i + 2];
    p.data[4 * i + 3] = 255;
  }
  return pngjs.PNG.sync.write(p, { colorType: 2 });
}

const errText = (e: unknown) => {
  const err = e as NodeJS.ErrnoException;
  return err.code === 'EACCES' ? 'permission denied' : err.code === 'ENOSPC' ? 'no space left on the device' : err.code === 'ENOTDIR' ? 'a part of the path is not a folder' : err.message;
};

/** OUT as a real path to rename onto: it must be missing or an empty folder (a symlink to one is followed). */
function checkOut(out: string, given: string): string {
  let st;
  try {
    st = statSync(out);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') throw new DataError(`cannot use the output folder '${given}': ${errText(e)}`);
    let dangling = false;
    try {
      dangling = lstatSync(out).isSymbolicLink();
    } catch {
      /* nothing there */
    }
    if (dangling) throw new DataError(`the output folder '${given}' is a symbolic link to nothing`);
    return out;
  }
  if (!st.isDirectory()) throw new DataError(`the output folder '${given}' exists and is not a folder`);
  if (readdirSync(out).length) throw new DataError(`the output folder '${given}' already exists and is not empty`);
  return realpathSync(out);
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Whether process `pid` exists (EPERM: it does, owned by someone else). */
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * Remove the partial folders a killed earlier run left beside OUT: only folders (not links) named exactly
 * `.<OUT's name>.partial-<pid>-<8 hex digits>` whose process no longer exists. A live pid (a run going on now, or a
 * reused pid) keeps its folder; anything that cannot be read or removed is left alone.
 */
function removeStalePartials(parent: string, name: string, note: (msg: string) => void): void {
  let entries: string[];
  try {
    entries = readdirSync(parent);
  } catch {
    return; // no parent yet: nothing stale
  }
  const re = new RegExp(`^\\.${escapeRe(name)}\\.partial-([1-9][0-9]{0,9})-[0-9a-f]{8}$`);
  for (const entry of entries) {
    const m = re.exec(entry);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || pidAlive(pid)) continue;
    const path = join(parent, entry);
    try {
      if (!lstatSync(path).isDirectory()) continue;
      rmSync(path, { recursive: true, force: true });
    } catch {
      continue;
    }
    note(`removed ${path}: the partial output of an earlier run that was killed (process ${pid} no longer exists)`);
  }
}

interface Run {
  given: string;
  target: string;
  tmp: string;
  report: BalanceReport;
  /** The writing, one step per file written. */
  steps: Generator<void>;
}

/** Check everything, remove stale partial folders, create this run's partial folder. */
function startRun(dir: string, opts: BalanceOptions): Run {
  const min = opts.minPerClass;
  if (!Number.isInteger(min) || min < 1) throw new DataError(`--min-per-class must be a positive integer, got ${min}`);
  const seed = opts.seed ?? 0;
  const warn = opts.warn ?? ((m: string) => console.warn(`warning: ${m}`));
  const note = opts.note ?? ((m: string) => console.warn(m));
  const src = resolve(dir);
  const out = resolve(opts.out);
  if (out === src || out.startsWith(src + '/')) throw new DataError(`the output folder '${opts.out}' must not be inside '${dir}'`);
  if (src.startsWith(out + '/')) throw new DataError(`the output folder '${opts.out}' must not contain '${dir}'`);
  const listing = listImageFolder(dir);
  if (listing.classes.includes('train') && existsSync(join(dir, 'train'))) {
    throw new DataError(`'${dir}' looks like a train/val/test layout; balance its training set: ${join(dir, 'train')}`);
  }
  const target = checkOut(out, opts.out);
  if (listing.ignored.length) warn(`${describeIgnored(listing.ignored)}: not counted and not copied`);
  // Everything is written into a hidden sibling of OUT (same file system, so the final rename is atomic).
  const parent = dirname(target);
  removeStalePartials(parent, basename(target), note);
  try {
    mkdirSync(parent, { recursive: true });
  } catch (e) {
    throw new DataError(`cannot create the output folder '${opts.out}': ${errText(e)}`);
  }
  // (removeStalePartials matches exactly this name)
  const tmp = join(parent, `.${basename(target)}.partial-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    mkdirSync(tmp);
  } catch (e) {
    throw new DataError(`cannot create the output folder '${opts.out}': ${errText(e)}`);
  }
  const report: BalanceReport = { dir, out: opts.out, minPerClass: min, seed, classes: [], copied: 0, generated: 0, ignored: listing.ignored };
  return { given: opts.out, target, tmp, report, steps: writeBalanced(dir, tmp, listing, min, seed, warn, opts.progress, report) };
}

function finishRun(run: Run): void {
  try {
    renameSync(run.tmp, run.target); // onto a missing path, or an empty folder
  } catch (e) {
    throw new DataError(`cannot create the output folder '${run.given}': ${errText(e)}`);
  }
}

/** Remove the partial folder and throw the failure as a DataError. */
function failRun(run: Run, e: unknown): never {
  rmSync(run.tmp, { recursive: true, force: true });
  if (e instanceof DataError) throw e;
  if ((e as NodeJS.ErrnoException).code) throw new DataError(`cannot write the output folder '${run.given}': ${errText(e)}; nothing was written`);
  throw new DataError(`${(e as Error).message}; nothing was written`);
}

export function balance(dir: string, opts: BalanceOptions): BalanceReport {
  const run = startRun(dir, opts);
  try {
    for (const _ of run.steps);
    finishRun(run);
  } catch (e) {
    failRun(run, e);
  }
  return run.report;
}

/**
 * `balance`, giving the event loop a turn after every file written, so that a SIGINT (Ctrl-C) or SIGTERM stops the run
 * cleanly (see BalanceAsyncOptions.handleSignals) instead of leaving the partial folder behind.
 */
export async function balanceAsync(dir: string, opts: BalanceAsyncOptions): Promise<BalanceReport> {
  let caught: 'SIGINT' | 'SIGTERM' | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    caught ??= signal === 'SIGTERM' ? 'SIGTERM' : 'SIGINT';
  };
  const handle = opts.handleSignals ?? true;
  // Test hook: CELLUSCAN_TEST_BALANCE_DELAY_MS=N waits N ms after every file written, so a test can signal a run
  // while its partial folder exists (test/balanceInterrupt.test.ts). Unset (or not a positive number): no wait.
  const delay = Number(process.env.CELLUSCAN_TEST_BALANCE_DELAY_MS ?? 0);
  const turn = () => (delay > 0 ? sleep(delay) : new Promise<void>((r) => setImmediate(r)));
  // Installed before the run starts: a signal during the (synchronous) checks waits for the first turn.
  if (handle) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  try {
    const run = startRun(dir, opts);
    try {
      for (const _ of run.steps) {
        await turn();
        if (caught) throw new BalanceInterrupted(caught, opts.out);
      }
      await turn();
      if (caught) throw new BalanceInterrupted(caught, opts.out);
      finishRun(run);
    } catch (e) {
      failRun(run, e);
    }
    return run.report;
  } finally {
    if (handle) {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
    }
  }
}

function* writeBalanced(
  dir: string,
  out: string,
  listing: ReturnType<typeof listImageFolder>,
  min: number,
  seed: number,
  warn: (msg: string) => void,
  progress: BalanceOptions['progress'],
  report: BalanceReport,
): Generator<void> {
  for (const [c, name] of listing.classes.entries()) {
    const classDir = join(dir, name);
    const files = listing.paths.filter((_, i) => listing.labels[i] === c);
    const cb: ClassBalance = { name, before: files.length, copied: 0, generated: 0, after: 0, unreadable: [] };
    const written = new Set<string>();
    for (const f of files) {
      const dst = join(out, name, relative(classDir, f));
      mkdirSync(dirname(dst), { recursive: true });
      try {
        copyFileSync(f, dst);
      } catch (e) {
        throw new DataError(`cannot copy ${f}: ${errText(e)}; nothing was written`);
      }
      written.add(dst);
      cb.copied++;
      yield;
    }
    const need = Math.max(0, min - files.length);
    if (need > 0) {
      // Find the readable sources (decoding each once; kept decoded when the class is small), then cycle over
      // them in sorted order.
      const keep = files.length <= 256;
      const decoded = new Map<string, RgbImage>();
      const readable: string[] = [];
      const decode = (f: string) => decodeImage(new Uint8Array(readFileSync(f)), f);
      for (const f of files) {
        try {
          const img = decode(f);
          readable.push(f);
          if (keep) decoded.set(f, img);
        } catch (e) {
          const reason = (e as Error).message.replace(`${f}: `, '');
          warn(`${name}: not augmenting unreadable image ${f}: ${reason}`);
          cb.unreadable.push(f);
        }
      }
      if (!readable.length) throw new DataError(`class '${name}' has no readable image to augment (${files.length} file${files.length === 1 ? "" : "s"}); nothing was written`);
      const perSource = new Map<string, number>();
      for (let k = 0; k < need; k++) {
        const f = readable[k % readable.length];
        const img = decoded.get(f) ?? decode(f);
        const idx = perSource.get(f) ?? 0;
        perSource.set(f, idx + 1);
        const rng = new Rng(mixSeed(seed, c, k));
        const a = augment({ data: img.data, width: img.width, height: img.height, channels: 3 }, rng).image;
        const rel = relative(classDir, f);
        let dst = join(out, name, rel.slice(0, rel.length - extname(rel).length) + `_aug${idx}.png`);
        for (let bump = 1; written.has(dst) || existsSync(dst); bump++) dst = join(out, name, rel.slice(0, rel.length - extname(rel).length) + `_aug${idx}-${bump}.png`);
        mkdirSync(dirname(dst), { recursive: true });
        writeFileSync(dst, encodePng({ width: a.width, height: a.height, data: a.data }));
        written.add(dst);
        cb.generated++;
        progress?.(name, k + 1, need);
        yield;
      }
    }
    cb.after = cb.copied + cb.generated;
    report.copied += cb.copied;
    report.generated += cb.generated;
    report.classes.push(cb);
  }
}

export function formatBalance(r: BalanceReport): string {
  const w = Math.max(5, ...r.classes.map((c) => c.name.length));
  const lines = [`${'class'.padEnd(w)}  before  generated  after`];
  for (const c of r.classes) lines.push(`${c.name.padEnd(w)}  ${String(c.before).padStart(6)}  ${String(c.generated).padStart(9)}  ${String(c.after).padStart(5)}${c.unreadable.length ? `  (${c.unreadable.length} unreadable, not augmented)` : ''}`);
  lines.push(`${r.out}: copied ${r.copied} images, generated ${r.generated} augmented ones so every class has at least ${r.minPerClass} (seed ${r.seed})`);
  if (r.ignored.length) lines.push(`${describeIgnored(r.ignored)}: not counted and not copied`);
  return lines.join('\n');
}
