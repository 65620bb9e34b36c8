// Node-only file I/O for weights: reading .pth/.pt (zip) and .safetensors files, atomic writes, convertFile.
// Everything here is a thin layer over the pure parsers in safetensors.ts / torchCheckpoint.ts / convert.ts.
import { open, readFile, realpath, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { convertStateDict, type ConvertOptions, type Layout } from './convert.js';
import type { VitConfig } from './config.js';
import {
  WeightsError,
  parseSafetensors,
  readCelluscanMetadata,
  serializeSafetensors,
  type LoadedTensor,
  type TensorData,
} from './safetensors.js';
import { isZip, readTorchCheckpoint } from './torchCheckpoint.js';

export interface WeightsFile {
  format: 'safetensors' | 'torch';
  tensors: Map<string, LoadedTensor>;
  /** safetensors metadata ({} for torch files). */
  metadata: Record<string, string>;
  notes: string[];
}

/** Parses weights bytes by content: a zip is a PyTorch checkpoint, anything else must be safetensors. */
export function parseWeights(bytes: Uint8Array): WeightsFile {
  if (isZip(bytes) || (bytes.length >= 2 && bytes[0] === 0x80 && bytes[1] <= 5)) {
    const ck = readTorchCheckpoint(bytes);
    return { format: 'torch', tensors: ck.tensors, metadata: {}, notes: ck.notes };
  }
  const st = parseSafetensors(bytes);
  return { format: 'safetensors', tensors: st.tensors, metadata: st.metadata, notes: [] };
}

/** Why a file operation failed, in words (no errno names, no temp-file names); `e.message` for anything unusual. */
export function fsReason(e: unknown): string {
  switch ((e as NodeJS.ErrnoException).code) {
    case 'ENOENT':
      return 'no such file';
    case 'EISDIR':
      return 'it is a folder';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'ENOSPC':
      return 'no space left on the device';
    case 'EROFS':
      return 'the file system is read-only';
    default:
      return (e as Error).message;
  }
}

export async function readWeightsFile(path: string): Promise<WeightsFile> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new WeightsError(`cannot read ${path}: ${fsReason(e)}`);
  }
  try {
    return parseWeights(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (e) {
    if (e instanceof WeightsError) throw new WeightsError(`${path}: ${e.message}`);
    throw e;
  }
}

/**
 * Why PATH cannot be written (its folder missing or not a folder, PATH itself a folder), or undefined if nothing
 * stands in the way that can be seen without writing.
 */
export async function unwritableReason(path: string): Promise<string | undefined> {
  const dir = dirname(path);
  try {
    if (!(await stat(dir)).isDirectory()) return `${dir} is not a folder`;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? `its folder ${dir} does not exist` : `its folder ${dir}: ${fsReason(e)}`;
  }
  try {
    if ((await stat(path)).isDirectory()) return 'it is a folder';
  } catch {
    /* absent: it will be created */
  }
  return undefined;
}

/**
 * Writes OUT.tmp-<pid>, fsyncs it, then renames it over OUT: readers never see a partial file. A failure is a
 * WeightsError naming OUT (not the temp file) and why, and leaves neither OUT changed nor the temp file behind.
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    const why = (await unwritableReason(path)) ?? fsReason(e);
    throw Object.assign(new WeightsError(`cannot write ${path}: ${why}`), { cause: e });
  }
}

export async function writeSafetensorsFile(path: string, tensors: Map<string, TensorData>, metadata: Record<string, string> = {}): Promise<number> {
  const bytes = serializeSafetensors(tensors, metadata);
  await writeFileAtomic(path, bytes);
  return bytes.length;
}

/** The real path both name when A and B are the same existing file (through links, or hard links), else undefined. */
async function sameFile(a: string, b: string): Promise<string | undefined> {
  let ra: string, rb: string;
  try {
    [ra, rb] = await Promise.all([realpath(a), realpath(b)]);
  } catch {
    return undefined; // one does not exist (a missing input is reported when it is read)
  }
  if (ra === rb) return ra;
  const [sa, sb] = await Promise.all([stat(ra), stat(rb)]);
  return sa.dev === sb.dev && sa.ino === sb.ino ? ra : undefined;
}

/**
 * Converts IN (.pth/.pt zip checkpoint or .safetensors; torchvision, Hugging Face or timm names) to a CelluScan
 * safetensors file at OUT (torchvision names, F32, celluscan_* metadata), written atomically. Labels/mean/std
 * already in a CelluScan input file are kept unless opts overrides them.
 */
export async function convertFile(
  inPath: string,
  outPath: string,
  opts: ConvertOptions = {},
): Promise<{ config: VitConfig; layout: Layout; notes: string[]; tensorCount: number; bytes: number }> {
  // Everything that can be checked before the (possibly large) input is read: OUT can be written, and is not IN.
  const blocked = await unwritableReason(outPath);
  if (blocked) {
    const hint = blocked === 'it is a folder' ? ` (give a file path, e.g. ${join(outPath, `${basename(inPath, extname(inPath))}.safetensors`)})` : '';
    throw new WeightsError(`cannot write ${outPath}: ${blocked}${hint}`);
  }
  const same = await sameFile(inPath, outPath);
  if (same) throw new WeightsError(`the input and the output are the same file (${same}): write the output to another path`);
  const file = await readWeightsFile(inPath);
  const prior = file.format === 'safetensors' ? readCelluscanMetadata(file.metadata) : {};
  // The stored head count is part of the model: a different --num-heads would silently make another model.
  if (opts.numHeads !== undefined && prior.config && opts.numHeads !== prior.config.num_heads) {
    throw new WeightsError(
      `${inPath}: --num-heads ${opts.numHeads} differs from the ${prior.config.num_heads} heads its metadata (celluscan_config) records: leave --num-heads out`,
    );
  }
  const merged: ConvertOptions = {
    numHeads: opts.numHeads ?? prior.config?.num_heads,
    labels: opts.labels ?? prior.labels,
    mean: opts.mean ?? prior.mean,
    std: opts.std ?? prior.std,
  };
  let res;
  try {
    res = convertStateDict(file.tensors, merged);
  } catch (e) {
    if (e instanceof WeightsError) throw new WeightsError(`${inPath}: ${e.message}`);
    throw e;
  }
  if (opts.numHeads === undefined && prior.config) {
    res.notes.push(`num_heads ${prior.config.num_heads} taken from the input file's celluscan_config`);
  }
  const bytes = await writeSafetensorsFile(outPath, res.tensors, res.metadata);
  return { config: res.config, layout: res.layout, notes: [...file.notes, ...res.notes], tensorCount: res.tensors.size, bytes };
}
