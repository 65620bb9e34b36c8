// Image decoding and ViT preprocessing.
//
// This module is pure (it runs in Node and in the browser). Decoding files is src/vit/decode.ts (Node: pngjs and
// jpeg-js); in a browser decode with an <img>/createImageBitmap + canvas and pass the RGBA to rgbFromRgba().
// Everything after decoding (prepareImage) is shared.
//
// prepareImage(): an image already image_size × image_size is used exactly as it is (no resampling). Otherwise it
// is resized keeping its aspect ratio so the long side is image_size (separable triangle filter widened by the
// scale factor when shrinking — PIL's antialiased BILINEAR — kept in float, not rounded to 8 bits), then padded
// with black (pixel value 0, before normalisation) centred to image_size × image_size; then normalised per
// channel as (pixel/255 − mean)/std into a CHW float32 array.

export class ImageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImageError';
  }
}

/** An 8-bit RGB image, row-major HWC. */
export interface RgbImage {
  width: number;
  height: number;
  /** width·height·3 bytes. */
  data: Uint8Array;
}

export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg'];

/** ImageNet's normalisation (torchvision's pretrained ViTs); the default when a weights file names none. */
export const IMAGENET_MEAN = [0.485, 0.456, 0.406];
export const IMAGENET_STD = [0.229, 0.224, 0.225];


/** RGBA (e.g. a canvas's ImageData) → RGB, alpha dropped. */
export function rgbFromRgba(rgba: ArrayLike<number>, width: number, height: number): RgbImage {
  const n = width * height;
  if (rgba.length !== n * 4) throw new ImageError(`RGBA data has ${rgba.length} bytes, expected ${n * 4} for ${width}×${height}`);
  const data = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    data[3 * i] = rgba[4 * i];
    data[3 * i + 1] = rgba[4 * i + 1];
    data[3 * i + 2] = rgba[4 * i + 2];
  }
  return { width, height, data };
}

/** Per output index: the first input index and the normalised weights (triangle filter, antialiased when shrinking). */
function filterWeights(inSize: number, outSize: number): { lo: number; w: Float64Array }[] {
  const scale = inSize / outSize;
  const support = Math.max(scale, 1);
  const out: { lo: number; w: Float64Array }[] = [];
  for (let i = 0; i < outSize; i++) {
    const center = (i + 0.5) * scale;
    const lo = Math.max(0, Math.floor(center - support));
    const hi = Math.min(inSize, Math.ceil(center + support));
    const w = new Float64Array(Math.max(1, hi - lo));
    let s = 0;
    for (let j = lo; j < hi; j++) {
      const x = Math.max(0, 1 - Math.abs((j + 0.5 - center) / support));
      w[j - lo] = x;
      s += x;
    }
    if (s > 0) for (let j = 0; j < w.length; j++) w[j] /= s;
    else w[Math.min(w.length - 1, Math.max(0, Math.floor(center) - lo))] = 1;
    out.push({ lo, w });
  }
  return out;
}

/** Resize HWC float RGB (separable: horizontal, then vertical). */
export function resizeRgb(src: Float32Array, w: number, h: number, nw: number, nh: number): Float32Array {
  if (nw === w && nh === h) return src.slice();
  const fx = filterWeights(w, nw);
  const tmp = new Float32Array(nw * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < nw; x++) {
      const { lo, w: wt } = fx[x];
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let k = 0; k < wt.length; k++) s += wt[k] * src[(y * w + lo + k) * 3 + c];
        tmp[(y * nw + x) * 3 + c] = s;
      }
    }
  }
  const fy = filterWeights(h, nh);
  const out = new Float32Array(nw * nh * 3);
  for (let y = 0; y < nh; y++) {
    const { lo, w: wt } = fy[y];
    for (let x = 0; x < nw; x++) {
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let k = 0; k < wt.length; k++) s += wt[k] * tmp[((lo + k) * nw + x) * 3 + c];
        out[(y * nw + x) * 3 + c] = s;
      }
    }
  }
  return out;
}

export interface PreparedImage {
  name: string;
  /** The decoded image's size. */
  width: number;
  height: number;
  /** image_size. */
  size: number;
  /** Where the (resized) image lies inside the size × size square. */
  box: { x: number; y: number; w: number; h: number };
  /** size·size·3 pixel values 0..255 (HWC), resized and padded, not normalised: for overlays. */
  rgb: Float32Array;
  /** 3·size·size normalised values (CHW): the model's input. */
  input: Float32Array;
}

export interface PrepareOptions {
  imageSize: number;
  mean?: readonly number[];
  std?: readonly number[];
  name?: string;
}

/** Resize (aspect kept) + centre-pad + normalise, as described at the top of this file. */
export function prepareImage(img: RgbImage, opts: PrepareOptions): PreparedImage {
  const S = opts.imageSize;
  const mean = opts.mean ?? IMAGENET_MEAN;
  const std = opts.std ?? IMAGENET_STD;
  const name = opts.name ?? 'image';
  if (!Number.isInteger(S) || S < 1) throw new ImageError(`image size must be a positive integer, got ${S}`);
  if (mean.length !== 3 || std.length !== 3) throw new ImageError('mean and std must have 3 values (R, G, B)');
  const { width: w, height: h } = img;
  const src = Float32Array.from(img.data);
  let rw: number;
  let rh: number;
  if (w >= h) {
    rw = S;
    rh = Math.max(1, Math.round((h * S) / w));
  } else {
    rh = S;
    rw = Math.max(1, Math.round((w * S) / h));
  }
  const resized = resizeRgb(src, w, h, rw, rh);
  const ox = Math.floor((S - rw) / 2);
  const oy = Math.floor((S - rh) / 2);
  const rgb = new Float32Array(S * S * 3);
  for (let y = 0; y < rh; y++) rgb.set(resized.subarray(y * rw * 3, (y + 1) * rw * 3), ((y + oy) * S + ox) * 3);
  const input = new Float32Array(3 * S * S);
  for (let c = 0; c < 3; c++) {
    const m = mean[c];
    const s = std[c];
    const off = c * S * S;
    for (let i = 0; i < S * S; i++) input[off + i] = (rgb[i * 3 + c] / 255 - m) / s;
  }
  return { name, width: w, height: h, size: S, box: { x: ox, y: oy, w: rw, h: rh }, rgb, input };
}
