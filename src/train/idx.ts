// IDX files (LeCun's MNIST format, also Fashion-MNIST's), gzipped or not, read with node:zlib.
//
// Layout: 2 zero bytes, a type byte (0x08 = unsigned byte, the only type the image datasets use), the number of
// dimensions, then each dimension as a big-endian u32, then the data row-major. Fashion-MNIST's images are
// magic 0x00000803 (count × 28 × 28) and its labels 0x00000801 (count).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

export class IdxError extends Error {
  override name = 'IdxError';
}

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

const TYPE_NAMES: Record<number, string> = { 0x08: 'unsigned byte', 0x09: 'signed byte', 0x0b: 'short', 0x0c: 'int', 0x0d: 'float', 0x0e: 'double' };

/** Parse IDX bytes (gunzipped first when they start with gzip's magic); `name` is named in every error. */
export function parseIdx(raw: Uint8Array, name = 'IDX file'): IdxArray {
  let bytes = raw;
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      bytes = new Uint8Array(gunzipSync(raw));
    } catch (e) {
      throw new IdxError(`${name}: corrupt gzip data (${(e as Error).message})`);
    }
  }
  if (bytes.length < 4) throw new IdxError(`${name}: too short for an IDX header (${bytes.length} bytes)`);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    const head = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new IdxError(`${name}: not an IDX file (magic starts ${head}, expected 00 00)`);
  }
  const type = bytes[2];
  if (type !== 0x08) throw new IdxError(`${name}: IDX data type 0x${type.toString(16)} (${TYPE_NAMES[type] ?? 'unknown'}) is not supported, only 0x08 (unsigned byte)`);
  const nd = bytes[3];
  if (nd < 1) throw new IdxError(`${name}: IDX header has 0 dimensions`);
  const headerLen = 4 + 4 * nd;
  if (bytes.length < headerLen) throw new IdxError(`${name}: truncated IDX header (${bytes.length} bytes, ${nd} dimensions need ${headerLen})`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < nd; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const n = dims.reduce((a, b) => a * b, 1);
  if (bytes.length - headerLen !== n) {
    throw new IdxError(`${name}: IDX dims [${dims.join(', ')}] need ${n} data bytes, file has ${bytes.length - headerLen}`);
  }
  return { dims, data: bytes.subarray(headerLen) };
}

export function readIdxFile(path: string): IdxArray {
  if (!existsSync(path)) throw new IdxError(`${path}: no such file`);
  return parseIdx(new Uint8Array(readFileSync(path)), path);
}

/** torchvision's FashionMNIST.classes, in label order. */
export const FASHION_MNIST_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

/** Where Debian's dataset-fashion-mnist package installs the four files. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

export interface IdxImages {
  count: number;
  rows: number;
  cols: number;
  /** count·rows·cols gray pixels. */
  images: Uint8Array;
  labels: Uint8Array;
  files: string[];
}

function findFile(dir: string, base: string): string {
  for (const f of [`${base}.gz`, base]) {
    const p = join(dir, f);
    if (existsSync(p)) return p;
  }
  const hint = dir === FASHION_MNIST_DIR ? ' (install Debian\'s dataset-fashion-mnist: apt-get install dataset-fashion-mnist)' : '';
  throw new IdxError(`Fashion-MNIST: ${join(dir, base)}.gz not found${hint}`);
}

/**
 * An IDX image/label pair: `{prefix}-images-idx3-ubyte[.gz]` and `{prefix}-labels-idx1-ubyte[.gz]` in `dir`
 * (prefix 'train' or 't10k' for (Fashion-)MNIST). Checks the pair agrees and labels are < numClasses.
 */
export function readIdxImages(dir: string, prefix: string, numClasses = 10): IdxImages {
  const ip = findFile(dir, `${prefix}-images-idx3-ubyte`);
  const lp = findFile(dir, `${prefix}-labels-idx1-ubyte`);
  const im = readIdxFile(ip);
  const lb = readIdxFile(lp);
  if (im.dims.length !== 3) throw new IdxError(`${ip}: expected 3 dimensions (count, rows, cols), got [${im.dims.join(', ')}]`);
  if (lb.dims.length !== 1) throw new IdxError(`${lp}: expected 1 dimension (count), got [${lb.dims.join(', ')}]`);
  const [count, rows, cols] = im.dims;
  if (lb.dims[0] !== count) throw new IdxError(`${lp}: ${lb.dims[0]} labels but ${ip} has ${count} images`);
  for (let i = 0; i < count; i++) {
    if (lb.data[i] >= numClasses) throw new IdxError(`${lp}: label ${lb.data[i]} at index ${i} is out of range (${numClasses} classes)`);
  }
  return { count, rows, cols, images: im.data, labels: lb.data, files: [ip, lp] };
}

/** Fashion-MNIST's training (60000) or test (10000) images from Debian's install (or `dir`). */
export function readFashionMnist(split: 'train' | 'test', dir = FASHION_MNIST_DIR): IdxImages {
  return readIdxImages(dir, split === 'train' ? 'train' : 't10k', FASHION_MNIST_CLASSES.length);
}
