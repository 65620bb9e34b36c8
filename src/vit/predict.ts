// Inference: a VisionTransformer from a CelluScan safetensors file (config, labels, mean and std from its
// metadata), images batched through it on the GPU, top-K results. Pure apart from the GPU (no Node imports):
// the browser shares it; reading files is the CLI's job (src/cli/vit.ts).
import { parseSafetensorsFile, readCelluscanMetadata, WeightsError } from './safetensors.js';
import { inferConfig, type VitConfig } from './config.js';
import { IMAGENET_MEAN, IMAGENET_STD, type PreparedImage } from './image.js';
import { genericLabels } from './labels.js';
import { VisionTransformer, type AttentionPath, type VitOptions } from './model.js';

export interface LoadedModel {
  model: VisionTransformer;
  config: VitConfig;
  labels: string[];
  mean: number[];
  std: number[];
  /** What was assumed (config inferred, labels or normalisation defaulted). */
  notes: string[];
}

/** Build the model from safetensors bytes and load its weights (strictly). `what` names the file in errors. */
export function loadModelFromSafetensors(bytes: Uint8Array, what = 'weights', opts: VitOptions = {}): LoadedModel {
  const file = parseSafetensorsFile(bytes, what);
  const meta = readCelluscanMetadata(file.metadata);
  const notes: string[] = [];
  let config = meta.config;
  if (!config) {
    const shapes = new Map([...file.tensors].map(([k, t]) => [k, t.shape]));
    let inf: ReturnType<typeof inferConfig>;
    try {
      inf = inferConfig(shapes);
    } catch (e) {
      throw new WeightsError(`${what}: ${(e as Error).message} (is it a model's weights? a run's optimizer.safetensors holds AdamW's state)`);
    }
    config = inf.config;
    notes.push(`${what} has no celluscan_config metadata: config inferred from the tensor shapes`, ...inf.notes);
  }
  const labels = meta.labels ?? genericLabels(config.num_classes);
  if (!meta.labels) notes.push(`no labels in ${what}: using class_0..class_${config.num_classes - 1}`);
  const mean = meta.mean ?? IMAGENET_MEAN;
  const std = meta.std ?? IMAGENET_STD;
  if (!meta.mean || !meta.std) notes.push(`no normalisation in ${what}: using ImageNet's mean/std for what is missing`);
  // A file without a class token / position embedding is a from-scratch variant: build the model to match.
  const pool = file.tensors.has('class_token') ? 'cls' : 'mean';
  const posEmbedding = file.tensors.has('encoder.pos_embedding');
  const model = new VisionTransformer(config, { ...opts, pool: opts.pool ?? pool, posEmbedding: opts.posEmbedding ?? posEmbedding });
  try {
    model.loadStateDict(file.tensors);
  } catch (e) {
    model.dispose();
    throw new WeightsError(`${what}: ${(e as Error).message}`);
  }
  model.eval();
  return { model, config, labels, mean: [...mean], std: [...std], notes };
}

export interface TopEntry {
  label: string;
  index: number;
  prob: number;
}

export interface Prediction {
  image: string;
  /** Raw logits in class order. */
  logits: number[];
  probs: number[];
  top: TopEntry[];
}

/** Softmax in float64. */
export function softmax(logits: ArrayLike<number>): number[] {
  let m = -Infinity;
  for (let i = 0; i < logits.length; i++) m = Math.max(m, logits[i]);
  const e = Array.from(logits, (x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

export function topK(probs: readonly number[], labels: readonly string[], k: number): TopEntry[] {
  return probs
    .map((prob, index) => ({ label: labels[index] ?? `class_${index}`, index, prob }))
    .sort((a, b) => b.prob - a.prob || a.index - b.index)
    .slice(0, Math.max(0, Math.min(k, probs.length)));
}

export interface PredictOptions {
  top?: number;
  attention?: AttentionPath;
  /** Images per forward pass (default 8). */
  batch?: number;
  ablate?: Iterable<readonly [number, number]>;
}

/** Raw logits for prepared images, `batch` at a time: one Float32Array [num_classes] per image. */
export async function logitsFor(lm: LoadedModel, images: readonly PreparedImage[], opts: PredictOptions = {}): Promise<Float32Array[]> {
  const S = lm.config.image_size;
  const C = lm.config.num_classes;
  const bs = Math.max(1, opts.batch ?? 8);
  const ablate = opts.ablate ? [...opts.ablate] : undefined;
  const out: Float32Array[] = [];
  for (let i = 0; i < images.length; i += bs) {
    const chunk = images.slice(i, i + bs);
    const input = new Float32Array(chunk.length * 3 * S * S);
    chunk.forEach((im, j) => {
      if (im.size !== S) throw new RangeError(`${im.name}: prepared at ${im.size}×${im.size}, the model takes ${S}×${S}`);
      input.set(im.input, j * 3 * S * S);
    });
    const logits = await lm.model.predictLogits(input, chunk.length, { attention: opts.attention, ablate });
    for (let j = 0; j < chunk.length; j++) out.push(logits.slice(j * C, (j + 1) * C));
  }
  return out;
}

export async function predict(lm: LoadedModel, images: readonly PreparedImage[], opts: PredictOptions = {}): Promise<Prediction[]> {
  const all = await logitsFor(lm, images, opts);
  return all.map((l, i) => {
    const probs = softmax(l);
    return { image: images[i].name, logits: Array.from(l), probs, top: topK(probs, lm.labels, opts.top ?? 5) };
  });
}
