// safetensors read/write (https://github.com/huggingface/safetensors#format), pure functions over Uint8Array so
// the browser can use them too. Layout: u64 LE header length N, N bytes of JSON header, then the data buffer;
// each header entry is { dtype, shape, data_offsets: [begin, end) } relative to the start of the data buffer.
import { validateConfig, type VitConfig } from './config.js';

/** Any problem reading, converting or validating a weights file. The message names the tensor/file part. */
export class WeightsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WeightsError';
  }
}

/** A tensor as CelluScan holds it: dense row-major float32. */
export interface TensorData {
  shape: number[];
  data: Float32Array;
}

/** A loaded tensor, with the dtype it was stored in (safetensors name: F32, F16, BF16, F64). */
export interface LoadedTensor extends TensorData {
  dtype: string;
}

export const DTYPE_SIZES: Record<string, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };
// Dtypes the spec defines that CelluScan does not load (named in the error instead of "unknown").
const OTHER_DTYPES = new Set(['BOOL', 'U8', 'I8', 'I16', 'U16', 'I32', 'U32', 'I64', 'U64', 'F8_E5M2', 'F8_E4M3', 'F8_E8M0', 'F4', 'F6_E2M3', 'F6_E3M2', 'C64']);

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const MAX_HEADER = 100_000_000; // the spec's limit, also guards against absurd allocations

export const fmtShape = (s: readonly number[] | undefined): string => (s ? `[${s.join(', ')}]` : '(absent)');

export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Copies bytes[begin, end) into a fresh, aligned ArrayBuffer, swapping each `size`-byte word if big-endian. */
function alignedCopy(bytes: Uint8Array, begin: number, end: number, size: number, bigEndian: boolean): ArrayBuffer {
  const copy = bytes.slice(begin, end);
  if (bigEndian === LITTLE_ENDIAN_HOST && size > 1) {
    for (let i = 0; i < copy.length; i += size) {
      for (let a = i, b = i + size - 1; a < b; a++, b--) {
        const t = copy[a];
        copy[a] = copy[b];
        copy[b] = t;
      }
    }
  }
  return copy.buffer;
}

/** IEEE half (binary16) bit patterns → float32 (exact: every half is a float32). */
export function halfToFloat32(h: Uint16Array): Float32Array {
  const out = new Float32Array(h.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < h.length; i++) {
    const x = h[i];
    const sign = (x & 0x8000) << 16;
    const exp = (x >> 10) & 0x1f;
    const man = x & 0x3ff;
    if (exp === 0) {
      if (man === 0) bits[i] = sign;
      else out[i] = (sign ? -1 : 1) * man * 2 ** -24; // subnormal
    } else if (exp === 31) {
      bits[i] = sign | 0x7f800000 | (man << 13); // inf / NaN
    } else {
      bits[i] = sign | ((exp + 112) << 23) | (man << 13);
    }
  }
  return out;
}

/** bfloat16 bit patterns → float32 (exact: the top 16 bits of a float32). */
export function bfloat16ToFloat32(h: Uint16Array): Float32Array {
  const out = new Float32Array(h.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < h.length; i++) bits[i] = h[i] << 16;
  return out;
}

/**
 * Decodes bytes[begin, end) holding elements of `dtype` (F32, F16, BF16, F64) into a new Float32Array.
 * F64 is rounded to nearest float32.
 */
export function decodeFloats(bytes: Uint8Array, begin: number, end: number, dtype: string, bigEndian = false): Float32Array {
  const size = DTYPE_SIZES[dtype];
  if (!size) throw new WeightsError(`unsupported dtype ${dtype}`);
  const buf = alignedCopy(bytes, begin, end, size, bigEndian);
  switch (dtype) {
    case 'F32':
      return new Float32Array(buf);
    case 'F16':
      return halfToFloat32(new Uint16Array(buf));
    case 'BF16':
      return bfloat16ToFloat32(new Uint16Array(buf));
    case 'F64':
      return Float32Array.from(new Float64Array(buf));
  }
  throw new WeightsError(`unsupported dtype ${dtype}`);
}

export interface SafetensorsFile {
  tensors: Map<string, LoadedTensor>;
  metadata: Record<string, string>;
}

/** What a PyTorch zip checkpoint given where safetensors are expected is told (every command that loads a model says it alike). */
const TORCH_ZIP = 'a PyTorch (zip) checkpoint, not safetensors: convert it first (celluscan convert IN OUT.safetensors)';
const isZipBytes = (b: Uint8Array): boolean => b.length >= 4 && b[0] === 0x50 && b[1] === 0x4b && b[2] === 0x03 && b[3] === 0x04;

/** Parses a .safetensors file; every tensor is converted to a Float32Array. Throws WeightsError on any defect. */
export function parseSafetensors(bytes: Uint8Array): SafetensorsFile {
  if (isZipBytes(bytes)) throw new WeightsError(`this is ${TORCH_ZIP}`);
  if (bytes.length < 8) {
    throw new WeightsError(`not a safetensors file: ${bytes.length} bytes is too short for the 8-byte header length`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lo = dv.getUint32(0, true);
  const hi = dv.getUint32(4, true);
  const headerLen = hi * 2 ** 32 + lo;
  if (headerLen > bytes.length - 8) {
    throw new WeightsError(
      `safetensors header length ${headerLen} is larger than the file (${bytes.length} bytes): the file is truncated or not safetensors`,
    );
  }
  if (headerLen > MAX_HEADER) throw new WeightsError(`safetensors header length ${headerLen} exceeds the 100 MB limit`);
  if (headerLen < 2) throw new WeightsError(`safetensors header length ${headerLen} is too small to hold a JSON object`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLen));
  } catch {
    throw new WeightsError('safetensors header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw new WeightsError(`safetensors header is not valid JSON: ${(e as Error).message}`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw new WeightsError('safetensors header must be a JSON object of tensor entries');
  }
  const dataStart = 8 + headerLen;
  const dataLen = bytes.length - dataStart;

  const metadata: Record<string, string> = {};
  const entries: { name: string; dtype: string; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new WeightsError('safetensors __metadata__ must be an object of strings');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new WeightsError(`safetensors __metadata__ entry '${k}' must be a string, got ${JSON.stringify(v)}`);
        metadata[k] = v;
      }
      continue;
    }
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new WeightsError(`tensor '${name}': header entry is not an object`);
    const { dtype, shape, data_offsets } = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof dtype !== 'string') throw new WeightsError(`tensor '${name}': missing or non-string dtype`);
    if (!(dtype in DTYPE_SIZES)) {
      if (OTHER_DTYPES.has(dtype)) {
        throw new WeightsError(`tensor '${name}': dtype ${dtype} is not supported (CelluScan loads F32, F16, BF16 and F64)`);
      }
      throw new WeightsError(`tensor '${name}': unknown dtype '${dtype}'`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new WeightsError(`tensor '${name}': shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    }
    if (
      !Array.isArray(data_offsets) ||
      data_offsets.length !== 2 ||
      !data_offsets.every((d) => Number.isSafeInteger(d) && d >= 0) ||
      data_offsets[0] > data_offsets[1]
    ) {
      throw new WeightsError(`tensor '${name}': data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(data_offsets)}`);
    }
    const [begin, end] = data_offsets as [number, number];
    if (end > dataLen) {
      throw new WeightsError(
        `tensor '${name}': data_offsets [${begin}, ${end}] run past the end of the data (${dataLen} bytes): the file is truncated or corrupt`,
      );
    }
    const want = numel(shape) * DTYPE_SIZES[dtype];
    if (end - begin !== want) {
      throw new WeightsError(
        `tensor '${name}': data_offsets [${begin}, ${end}] hold ${end - begin} bytes but ${dtype} ${fmtShape(shape)} needs ${want}`,
      );
    }
    entries.push({ name, dtype, shape: shape as number[], begin, end });
  }
  const byStart = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < byStart.length; i++) {
    const p = byStart[i - 1];
    const c = byStart[i];
    if (c.begin < p.end) {
      throw new WeightsError(`tensors '${p.name}' [${p.begin}, ${p.end}) and '${c.name}' [${c.begin}, ${c.end}) overlap in the data buffer`);
    }
  }
  const tensors = new Map<string, LoadedTensor>();
  for (const e of entries) {
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data: decodeFloats(bytes, dataStart + e.begin, dataStart + e.end, e.dtype) });
  }
  return { tensors, metadata };
}

/**
 * parseSafetensors for a model file that `what` names (predict, attention, eval, tune): every error starts with the
 * name, and a PyTorch checkpoint is told to be converted first.
 */
export function parseSafetensorsFile(bytes: Uint8Array, what: string): SafetensorsFile {
  if (isZipBytes(bytes)) throw new WeightsError(`${what} is ${TORCH_ZIP}`);
  try {
    return parseSafetensors(bytes);
  } catch (e) {
    throw new WeightsError(`${what}: ${(e as Error).message}`);
  }
}

/**
 * Writes tensors as F32 safetensors: keys sorted, data in key order, header JSON padded with spaces to a
 * multiple of 8 bytes (so the data buffer is 8-aligned).
 */
export function serializeSafetensors(tensors: Map<string, TensorData>, metadata: Record<string, string> = {}): Uint8Array {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new WeightsError(`metadata '${k}' must be a string`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const name of names) {
    if (name === '__metadata__' || name === '') throw new WeightsError(`invalid tensor name '${name}'`);
    const t = tensors.get(name)!;
    if (!(t.data instanceof Float32Array)) throw new WeightsError(`tensor '${name}': data must be a Float32Array`);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0) || numel(t.shape) !== t.data.length) {
      throw new WeightsError(`tensor '${name}': shape ${fmtShape(t.shape)} does not match its ${t.data.length} values`);
    }
    const n = t.data.length * 4;
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + n] };
    offset += n;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + offset);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, json.length, true);
  dv.setUint32(4, 0, true);
  out.set(json, 8);
  let pos = 8 + json.length;
  for (const name of names) {
    const d = tensors.get(name)!.data;
    if (LITTLE_ENDIAN_HOST) {
      out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), pos);
    } else {
      for (let i = 0; i < d.length; i++) dv.setFloat32(pos + 4 * i, d[i], true);
    }
    pos += d.byteLength;
  }
  return out;
}

// ---- CelluScan metadata --------------------------------------------------------------------------------------

/** What a CelluScan weights file says about itself, besides the tensors. */
export interface CelluscanMeta {
  config: VitConfig;
  labels?: string[];
  mean?: number[];
  std?: number[];
}

export const META_KEYS = {
  config: 'celluscan_config',
  labels: 'celluscan_labels',
  mean: 'celluscan_mean',
  std: 'celluscan_std',
} as const;

function checkNormalisation(name: string, v: unknown, positive: boolean): number[] {
  if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && (!positive || x > 0))) {
    throw new WeightsError(`${name} must be 3 finite numbers${positive ? ' > 0' : ''} (one per RGB channel), got ${JSON.stringify(v)}`);
  }
  return v as number[];
}

function checkLabels(v: unknown, numClasses?: number): string[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new WeightsError(`labels must be an array of strings, got ${JSON.stringify(v)}`);
  if (numClasses !== undefined && v.length !== numClasses) {
    throw new WeightsError(`${v.length} labels given but the model has ${numClasses} classes`);
  }
  return v as string[];
}

/** safetensors metadata for a CelluScan file (`format: 'pt'` as torch-written files, plus the celluscan_* keys). */
export function celluscanMetadata(meta: CelluscanMeta): Record<string, string> {
  validateConfig(meta.config);
  const md: Record<string, string> = { format: 'pt', [META_KEYS.config]: JSON.stringify(meta.config) };
  if (meta.labels !== undefined) md[META_KEYS.labels] = JSON.stringify(checkLabels(meta.labels, meta.config.num_classes));
  if (meta.mean !== undefined) md[META_KEYS.mean] = JSON.stringify(checkNormalisation('mean', meta.mean, false));
  if (meta.std !== undefined) md[META_KEYS.std] = JSON.stringify(checkNormalisation('std', meta.std, true));
  return md;
}

/** Reads the celluscan_* metadata keys present (each validated); absent keys are absent from the result. */
export function readCelluscanMetadata(md: Record<string, string>): Partial<CelluscanMeta> {
  const parse = (key: string): unknown => {
    try {
      return JSON.parse(md[key]);
    } catch (e) {
      throw new WeightsError(`metadata '${key}' is not valid JSON: ${(e as Error).message}`);
    }
  };
  const out: Partial<CelluscanMeta> = {};
  if (META_KEYS.config in md) {
    const c = parse(META_KEYS.config) as VitConfig;
    validateConfig(c);
    out.config = c;
  }
  if (META_KEYS.labels in md) out.labels = checkLabels(parse(META_KEYS.labels), out.config?.num_classes);
  if (META_KEYS.mean in md) out.mean = checkNormalisation('mean', parse(META_KEYS.mean), false);
  if (META_KEYS.std in md) out.std = checkNormalisation('std', parse(META_KEYS.std), true);
  return out;
}
