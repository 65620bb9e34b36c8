// Node-only file I/O for weights: reading .pth/.pt (zip) and .safetensors files, atomic writes, convertFile.
// Everything here is a thin layer over the pure parsers in safetensors.ts / torchCheckpoint.ts / convert.ts.
import { open, readFile, rename, unlink } from 'node:fs/promises';
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

export async function readWeightsFile(path: string): Promise<WeightsFile> {
  const bytes = await readFile(path);
  try {
    return parseWeights(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (e) {
    if (e instanceof WeightsError) throw new WeightsError(`${path}: ${e.message}`);
    throw e;
  }
}

/** Writes OUT.tmp-<pid>, fsyncs it, then renames it over OUT: readers never see a partial file. */
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
    throw e;
  }
}

export async function writeSafetensorsFile(path: string, tensors: Map<string, TensorData>, metadata: Record<string, string> = {}): Promise<number> {
  const bytes = serializeSafetensors(tensors, metadata);
  await writeFileAtomic(path, bytes);
  return bytes.length;
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
  const file = await readWeightsFile(inPath);
  const prior = file.format === 'safetensors' ? readCelluscanMetadata(file.metadata) : {};
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
