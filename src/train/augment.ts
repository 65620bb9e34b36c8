// Training-time augmentation on the CPU: random horizontal flip (p = 0.5) then torchvision's TrivialAugmentWide
// (one op per image, a random magnitude bin of 31, a random sign for signed ops), on 8-bit HWC images with 1 or 3
// channels. Each op follows torchvision 0.14's tensor implementation (transforms/functional_tensor.py), with its
// float32 arithmetic mimicked (Math.fround) so the photometric ops give the same bytes as torchvision; the
// geometric ops sample nearest-neighbour (InterpolationMode.NEAREST, torchvision's default) with fill 0.
//
// Randomness comes from a seeded Rng; the trainer seeds one per (run seed, epoch, sample index) with mixSeed(),
// so a run is reproducible whatever the batch order.

/** An 8-bit image, row-major HWC. */
export interface U8Image {
  data: Uint8Array;
  width: number;
  height: number;
  channels: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Random numbers

/** 32-bit hash mix (murmur3's finaliser). */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** One 32-bit seed from several integers (e.g. run seed, epoch, sample index). */
export function mixSeed(...xs: number[]): number {
  let h = 0x9e3779b9;
  for (const x of xs) {
    // Fold in both 32-bit halves so seeds above 2^32 still differ.
    const lo = x >>> 0;
    const hi = Math.floor(x / 4294967296) >>> 0;
    h = fmix32((h ^ lo) + 0x7f4a7c15);
    h = fmix32((h ^ hi) + 0x165667b1);
  }
  return h;
}

/** A small seeded generator (mulberry32 over a mixed seed). */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = mixSeed(seed);
  }
  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** Uniform in [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }
  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }
  /** Fisher–Yates shuffle in place. */
  shuffle<T>(a: T[] | Int32Array | Uint32Array): typeof a {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// TrivialAugmentWide's augmentation space

export const TA_OPS = [
  'Identity',
  'ShearX',
  'ShearY',
  'TranslateX',
  'TranslateY',
  'Rotate',
  'Brightness',
  'Color',
  'Contrast',
  'Sharpness',
  'Posterize',
  'Solarize',
  'AutoContrast',
  'Equalize',
] as const;
export type TaOp = (typeof TA_OPS)[number];

const f32 = Math.fround;

/**
 * torch.linspace(start, end, steps) for float32 as torch 1.13's CPU kernel computes it with AVX2 (8-float vectors):
 * step = (end − start)/(steps − 1) in float32; in blocks of 16 a vector base = start + step·idx (or, past halfway,
 * end − step·(steps − 1 − idx)), fused multiply-add, then base + f32(step·j) for each lane; the tail per element with
 * a fused multiply-add. (Which end an element is stepped from and the fusing change the last bit, and TrivialAugment's
 * bins are these float32 values read back as doubles.)
 */
export function linspaceF32(start: number, end: number, steps: number): number[] {
  if (steps === 1) return [f32(start)];
  const a = f32(start);
  const b = f32(end);
  const step = f32(f32(b - a) / (steps - 1));
  const half = Math.floor(steps / 2);
  // step·k is exact in float64 for k < 2^29, so one f32 rounding of a ± step·k is the fused multiply-add.
  const fma = (i: number) => (i < half ? f32(a + step * i) : f32(b - step * (steps - 1 - i)));
  const out: number[] = [];
  let i = 0;
  for (; i + 16 <= steps; i += 16) {
    for (const v of [i, i + 8]) {
      const base = fma(v);
      for (let j = 0; j < 8; j++) out.push(f32(base + f32(step * j)));
    }
  }
  for (; i < steps; i++) out.push(fma(i));
  return out;
}

export interface OpSpace {
  /** null: the op takes no magnitude (torchvision passes 0.0). */
  magnitudes: number[] | null;
  signed: boolean;
}

/** torchvision's TrivialAugmentWide._augmentation_space(num_bins), op order included. */
export function augmentationSpace(numBins = 31): Record<TaOp, OpSpace> {
  const lin = (a: number, b: number) => linspaceF32(a, b, numBins);
  return {
    Identity: { magnitudes: null, signed: false },
    ShearX: { magnitudes: lin(0, 0.99), signed: true },
    ShearY: { magnitudes: lin(0, 0.99), signed: true },
    TranslateX: { magnitudes: lin(0, 32), signed: true },
    TranslateY: { magnitudes: lin(0, 32), signed: true },
    Rotate: { magnitudes: lin(0, 135), signed: true },
    Brightness: { magnitudes: lin(0, 0.99), signed: true },
    Color: { magnitudes: lin(0, 0.99), signed: true },
    Contrast: { magnitudes: lin(0, 0.99), signed: true },
    Sharpness: { magnitudes: lin(0, 0.99), signed: true },
    // 8 - (arange(num_bins) / ((num_bins - 1) / 6)).round().int()
    Posterize: { magnitudes: Array.from({ length: numBins }, (_, i) => 8 - roundHalfEven(f32(i / ((numBins - 1) / 6)))), signed: false },
    Solarize: { magnitudes: lin(255, 0), signed: false },
    AutoContrast: { magnitudes: null, signed: false },
    Equalize: { magnitudes: null, signed: false },
  };
}

/** Round half to even (torch.round, nearbyint). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// ---------------------------------------------------------------------------------------------------------------
// Ops (each returns a new image; the input is not modified)

function like(img: U8Image, data = new Uint8Array(img.data.length)): U8Image {
  return { data, width: img.width, height: img.height, channels: img.channels };
}

function checkImage(img: U8Image, op: string): void {
  const { width: w, height: h, channels: c } = img;
  if (c !== 1 && c !== 3) throw new RangeError(`${op}: images must have 1 or 3 channels, got ${c}`);
  if (img.data.length !== w * h * c) throw new RangeError(`${op}: ${w}×${h}×${c} image needs ${w * h * c} bytes, got ${img.data.length}`);
}

export function hflip(img: U8Image): U8Image {
  const { width: w, height: h, channels: c } = img;
  const out = like(img);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const s = (y * w + x) * c;
      const d = (y * w + (w - 1 - x)) * c;
      for (let k = 0; k < c; k++) out.data[d + k] = img.data[s + k];
    }
  }
  return out;
}

/** torchvision.transforms.functional._get_inverse_affine_matrix (angles in degrees). */
export function inverseAffineMatrix(center: [number, number], angle: number, translate: [number, number], scale: number, shear: [number, number]): number[] {
  const rad = (d: number) => (d * Math.PI) / 180;
  const rot = rad(angle);
  const sx = rad(shear[0]);
  const sy = rad(shear[1]);
  const [cx, cy] = center;
  const [tx, ty] = translate;
  const a = Math.cos(rot - sy) / Math.cos(sy);
  const b = (-Math.cos(rot - sy) * Math.tan(sx)) / Math.cos(sy) - Math.sin(rot);
  const c = Math.sin(rot - sy) / Math.cos(sy);
  const d = (-Math.sin(rot - sy) * Math.tan(sx)) / Math.cos(sy) + Math.cos(rot);
  const m = [d, -b, 0, -c, a, 0].map((x) => x / scale);
  m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty);
  m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty);
  m[2] += cx;
  m[5] += cy;
  return m;
}

/**
 * Inverse-map every output pixel through `matrix` (output → input, in coordinates centred on the image, as
 * torchvision's _gen_affine_grid) and sample the nearest input pixel (grid_sample, align_corners=False,
 * padding zeros). float32 throughout like torch; pixels whose source lands exactly on a half may still round the
 * other way than torch's fused kernels do.
 */
export function affineNearest(img: U8Image, matrix: number[]): U8Image {
  const { width: w, height: h, channels: c } = img;
  const out = like(img);
  const t = matrix.map(f32);
  const hw = f32(0.5 * w);
  const hh = f32(0.5 * h);
  // rescaled_theta = theta^T / [0.5 w, 0.5 h]
  const r00 = f32(t[0] / hw), r10 = f32(t[1] / hw), r20 = f32(t[2] / hw);
  const r01 = f32(t[3] / hh), r11 = f32(t[4] / hh), r21 = f32(t[5] / hh);
  for (let i = 0; i < h; i++) {
    const y = f32(-h * 0.5 + 0.5 + i);
    for (let j = 0; j < w; j++) {
      const x = f32(-w * 0.5 + 0.5 + j);
      const gx = f32(f32(f32(x * r00) + f32(y * r10)) + r20);
      const gy = f32(f32(f32(x * r01) + f32(y * r11)) + r21);
      const ix = roundHalfEven(f32(f32(f32(gx + 1) * w - 1) / 2));
      const iy = roundHalfEven(f32(f32(f32(gy + 1) * h - 1) / 2));
      if (ix < 0 || ix >= w || iy < 0 || iy >= h) continue; // fill 0
      const s = (iy * w + ix) * c;
      const d = (i * w + j) * c;
      for (let k = 0; k < c; k++) out.data[d + k] = img.data[s + k];
    }
  }
  return out;
}

/** F.affine(img, angle=0, translate=[0,0], scale=1, shear=[deg(atan(m)), 0], center=[0,0]). */
export function shearX(img: U8Image, m: number): U8Image {
  const deg = (Math.atan(m) * 180) / Math.PI;
  return affineNearest(img, inverseAffineMatrix([-img.width * 0.5, -img.height * 0.5], 0, [0, 0], 1, [deg, 0]));
}

export function shearY(img: U8Image, m: number): U8Image {
  const deg = (Math.atan(m) * 180) / Math.PI;
  return affineNearest(img, inverseAffineMatrix([-img.width * 0.5, -img.height * 0.5], 0, [0, 0], 1, [0, deg]));
}

/** Translate by whole pixels (int(m), truncated toward zero as Python's int()). */
export function translate(img: U8Image, dx: number, dy: number): U8Image {
  return affineNearest(img, inverseAffineMatrix([0, 0], 0, [Math.trunc(dx), Math.trunc(dy)], 1, [0, 0]));
}

/** F.rotate(img, angle): counter-clockwise degrees about the centre, same size, fill 0. */
export function rotate(img: U8Image, angle: number): U8Image {
  return affineNearest(img, inverseAffineMatrix([0, 0], -angle, [0, 0], 1, [0, 0]));
}

/** torchvision's _blend: (ratio·img1 + (1 − ratio)·img2) in float32, clamped, truncated to uint8. */
function blend(img: U8Image, other: (idx: number) => number, ratio: number): U8Image {
  const out = like(img);
  const r = f32(ratio);
  const q = f32(1 - ratio);
  const src = img.data;
  for (let i = 0; i < src.length; i++) {
    const v = f32(f32(r * src[i]) + f32(q * other(i)));
    out.data[i] = v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v);
  }
  return out;
}

/** rgb_to_grayscale for uint8: (0.2989 r + 0.587 g + 0.114 b) in float32, truncated. One value per pixel. */
export function grayscale(img: U8Image): Uint8Array {
  const n = img.width * img.height;
  if (img.channels === 1) return img.data.slice();
  const g = new Uint8Array(n);
  const wr = f32(0.2989), wg = f32(0.587), wb = f32(0.114);
  const d = img.data;
  for (let i = 0; i < n; i++) {
    const v = f32(f32(f32(wr * d[3 * i]) + f32(wg * d[3 * i + 1])) + f32(wb * d[3 * i + 2]));
    g[i] = Math.trunc(v);
  }
  return g;
}

export function adjustBrightness(img: U8Image, factor: number): U8Image {
  return blend(img, () => 0, factor);
}

export function adjustSaturation(img: U8Image, factor: number): U8Image {
  if (img.channels === 1) return like(img, img.data.slice());
  const g = grayscale(img);
  return blend(img, (i) => g[(i / 3) | 0], factor);
}

export function adjustContrast(img: U8Image, factor: number): U8Image {
  const g = grayscale(img);
  let sum = 0;
  for (let i = 0; i < g.length; i++) sum += g[i];
  const mean = f32(f32(sum) / g.length);
  return blend(img, () => mean, factor);
}

export function adjustSharpness(img: U8Image, factor: number): U8Image {
  const { width: w, height: h, channels: c } = img;
  if (w <= 2 || h <= 2) return like(img, img.data.slice());
  // The "degenerate" image: a 3×3 smoothing (1 1 1 / 1 5 1 / 1 1 1)/13 inside, the border pixels unchanged.
  const blur = img.data.slice();
  const d = img.data;
  for (let y = 1; y < h - 1; y++) {
    for (let x = 1; x < w - 1; x++) {
      for (let k = 0; k < c; k++) {
        let s = 0;
        for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) s += d[((y + dy) * w + x + dx) * c + k];
        s += 4 * d[(y * w + x) * c + k];
        // s/13 is never within 1/26 of a half, so rounding the exact value matches torch's float32 conv + round.
        blur[(y * w + x) * c + k] = Math.round(s / 13);
      }
    }
  }
  return blend(img, (i) => blur[i], factor);
}

export function posterize(img: U8Image, bits: number): U8Image {
  const mask = (0xff << (8 - bits)) & 0xff;
  const out = like(img);
  for (let i = 0; i < img.data.length; i++) out.data[i] = img.data[i] & mask;
  return out;
}

export function solarize(img: U8Image, threshold: number): U8Image {
  const out = like(img);
  for (let i = 0; i < img.data.length; i++) {
    const v = img.data[i];
    out.data[i] = v >= threshold ? 255 - v : v;
  }
  return out;
}

export function autocontrast(img: U8Image): U8Image {
  const { channels: c } = img;
  const n = img.width * img.height;
  const out = like(img);
  for (let k = 0; k < c; k++) {
    let lo = 255, hi = 0;
    for (let i = 0; i < n; i++) {
      const v = img.data[i * c + k];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    let min = lo;
    let scale = f32(255 / (hi - lo));
    if (hi === lo) {
      min = 0;
      scale = 1;
    }
    for (let i = 0; i < n; i++) {
      const v = f32((img.data[i * c + k] - min) * scale);
      out.data[i * c + k] = v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v);
    }
  }
  return out;
}

export function equalize(img: U8Image): U8Image {
  const { channels: c } = img;
  const n = img.width * img.height;
  const out = like(img);
  const hist = new Float64Array(256);
  const lut = new Uint8Array(256);
  for (let k = 0; k < c; k++) {
    hist.fill(0);
    for (let i = 0; i < n; i++) hist[img.data[i * c + k]]++;
    // step = (sum of the non-zero bins but the last) // 255
    let last = 255;
    while (last > 0 && hist[last] === 0) last--;
    let total = 0;
    for (let v = 0; v < last; v++) total += hist[v];
    const step = Math.floor(total / 255);
    if (step === 0) {
      for (let i = 0; i < n; i++) out.data[i * c + k] = img.data[i * c + k];
      continue;
    }
    // lut = (cumsum + step // 2) // step, shifted right by one (lut[0] = 0), clamped to 255
    let cum = 0;
    lut[0] = 0;
    for (let v = 0; v < 255; v++) {
      cum += hist[v];
      lut[v + 1] = Math.min(255, Math.floor((cum + Math.floor(step / 2)) / step));
    }
    for (let i = 0; i < n; i++) out.data[i * c + k] = lut[img.data[i * c + k]];
  }
  return out;
}

/** torchvision's autoaugment._apply_op. */
export function applyOp(img: U8Image, op: TaOp, magnitude: number): U8Image {
  checkImage(img, op);
  switch (op) {
    case 'Identity':
      return like(img, img.data.slice());
    case 'ShearX':
      return shearX(img, magnitude);
    case 'ShearY':
      return shearY(img, magnitude);
    case 'TranslateX':
      return translate(img, magnitude, 0);
    case 'TranslateY':
      return translate(img, 0, magnitude);
    case 'Rotate':
      return rotate(img, magnitude);
    case 'Brightness':
      return adjustBrightness(img, 1 + magnitude);
    case 'Color':
      return adjustSaturation(img, 1 + magnitude);
    case 'Contrast':
      return adjustContrast(img, 1 + magnitude);
    case 'Sharpness':
      return adjustSharpness(img, 1 + magnitude);
    case 'Posterize':
      return posterize(img, Math.trunc(magnitude));
    case 'Solarize':
      return solarize(img, magnitude);
    case 'AutoContrast':
      return autocontrast(img);
    case 'Equalize':
      return equalize(img);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The transforms

export interface OpChoice {
  op: TaOp;
  magnitude: number;
}

const SPACE31 = augmentationSpace(31);

/** TrivialAugmentWide.forward's draws: an op, a magnitude bin (ops with magnitudes), a sign (signed ops). */
export function sampleTrivialAugment(rng: Rng, numBins = 31): OpChoice {
  const space = numBins === 31 ? SPACE31 : augmentationSpace(numBins);
  const op = TA_OPS[rng.int(TA_OPS.length)];
  const { magnitudes, signed } = space[op];
  let magnitude = magnitudes ? magnitudes[rng.int(magnitudes.length)] : 0;
  if (signed && rng.int(2) === 1) magnitude = -magnitude;
  return { op, magnitude };
}

export function trivialAugmentWide(img: U8Image, rng: Rng): { image: U8Image; choice: OpChoice } {
  const choice = sampleTrivialAugment(rng);
  return { image: applyOp(img, choice.op, choice.magnitude), choice };
}

export interface AugmentInfo {
  flipped: boolean;
  op: TaOp;
  magnitude: number;
}

/** The training augmentation: RandomHorizontalFlip(0.5), then TrivialAugmentWide(). */
export function augment(img: U8Image, rng: Rng): { image: U8Image; info: AugmentInfo } {
  checkImage(img, 'augment');
  const flipped = rng.float() < 0.5;
  const src = flipped ? hflip(img) : img;
  const { image, choice } = trivialAugmentWide(src, rng);
  return { image, info: { flipped, op: choice.op, magnitude: choice.magnitude } };
}
