// The training loop: a VisionTransformer on our autograd, AdamW (torch.optim.AdamW's arithmetic), cross-entropy,
// optional warmup + cosine schedule, label smoothing, global-norm gradient clipping, gradient accumulation and
// no-decay parameter groups; metrics.jsonl, checkpoints (resume bit for bit), plots and summaries in the run folder.
//
// Determinism: the epoch order is epochOrder(seed, epoch) (or the file order with shuffle off), augmentation draws
// come from Rng(mixSeed(seed, epoch, index)), dropout seeds from the model's counter (saved in checkpoints), so a
// run stopped at any step boundary and resumed ends at the same weights as an uninterrupted one.
//
// GPU memory: every step runs in a scope(); only parameters, their .grad between micro-batches, and the optimizer's
// moments outlive it.
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ops from '../autograd/ops.js';
import { AdamW, type ParamGroup } from '../autograd/optim.js';
import { noGrad, Tensor, type Parameter } from '../autograd/tensor.js';
import { affine, unary } from '../kernels/elementwise.js';
import { addInPlace } from '../kernels/elementwise.js';
import { flush } from '../kernels/encoder.js';
import { GpuArray, keep, memoryStats, resetPeakMemory, scope } from '../kernels/memory.js';
import { sum as sumK } from '../kernels/reduce.js';
import { validateConfig, vitPreset, VIT_PRESETS, type VitConfig, type VitPresetName } from '../vit/config.js';
import { presetLabels, isLabelPreset } from '../vit/labels.js';
import { VisionTransformer } from '../vit/model.js';
import { readCelluscanMetadata } from '../vit/safetensors.js';
import { readWeightsFile } from '../vit/weightsFile.node.js';
import { hflip, mixSeed, Rng, translate, type U8Image } from './augment.js';
import type { PreparedDataset } from './cache.js';
import { CheckpointError, dropoutCounterOf, hasCheckpoint, loadCheckpoint, restoreCheckpoint, saveCheckpoint, type TrainState } from './checkpoint.js';
import { DataError, epochOrder, loadData, makeBatch, numBatches, type Batch, type DataBundle } from './data.js';
import { accumulateConfusion, argmaxRow, emptyConfusion, reportFromConfusion, type ClassificationReport } from './metrics.js';
import { writeTrainingPlots, type EvalPoint, type StepPoint } from './plots.js';
import type { AugmentMode } from './presets.js';
import { formatDuration, Progress, type ProgressStream } from './progress.js';

export class TrainError extends Error {
  override name = 'TrainError';
}

export interface TrainOptions {
  /** A data folder or 'fashion-mnist'. */
  data: string;
  /** The run folder. */
  out: string;
  /** A ViT preset name (num_classes set from the data). Default vit_b_16 when neither config nor init is given. */
  model?: string;
  /** A full or partial VitConfig (num_classes set from the data). */
  config?: Partial<VitConfig>;
  /** Initial weights (CelluScan safetensors or a torch checkpoint). */
  init?: string;
  /** Replace the --init weights' classification head with a fresh one (fine-tuning to a new label set). */
  newHead?: boolean;
  /** Heads of an --init torch checkpoint's attention (its tensors do not say; torchvision's presets are recognised). */
  numHeads?: number;
  /** Label names the data's classes must match (a preset such as 'wbc14'). */
  labels?: string;
  epochs?: number;
  maxSteps?: number;
  batchSize?: number;
  lr?: number;
  weightDecay?: number;
  betas?: [number, number];
  eps?: number;
  seed?: number;
  shuffle?: boolean;
  augment?: AugmentMode | boolean;
  mean?: number[];
  std?: number[];
  resume?: boolean;
  subset?: number;
  valFraction?: number;
  warmupSteps?: number;
  schedule?: 'constant' | 'cosine';
  labelSmoothing?: number;
  clipGradNorm?: number;
  gradAccum?: number;
  /** Weight decay on LayerNorm parameters and biases (default true: decay on all parameters, as the seed). */
  decayNormBias?: boolean;
  /** Write a checkpoint every N steps (besides every epoch end, the end of the run and an interrupt). */
  saveEvery?: number;
  /** Evaluate on the validation split at the end of every epoch (default true). */
  evalEachEpoch?: boolean;
  evalBatchSize?: number;
  /** Image cache folder (default: the data module's), or false. */
  cacheDir?: string | false;
  /** Where progress and messages go (default stdout). */
  stream?: ProgressStream;
  /** Install a SIGINT handler that checkpoints at the next step boundary (default true). */
  handleSigint?: boolean;
  /** Test hooks: behave as if Ctrl-C came after this step / as if the loss of this step were NaN. */
  debugInterruptAtStep?: number;
  debugNanAtStep?: number;
}

export interface TrainResult {
  status: 'completed' | 'interrupted' | 'diverged';
  message?: string;
  steps: number;
  epochs: number;
  wallS: number;
  imagesPerS: number;
  finalLoss: number;
  val?: EvalResult;
  test?: EvalResult;
  skipped: { split?: string; name: string; reason: string }[];
  files: string[];
  summary: Record<string, unknown>;
}

export interface EvalResult {
  split: string;
  loss: number;
  report: ClassificationReport;
}

// Options that belong to the run (saved in checkpoints; --resume defaults to them).
const RUN_KEYS = [
  'data', 'model', 'config', 'init', 'newHead', 'numHeads', 'labels', 'epochs', 'maxSteps', 'batchSize', 'lr', 'weightDecay', 'betas', 'eps', 'seed',
  'shuffle', 'augment', 'mean', 'std', 'subset', 'valFraction', 'warmupSteps', 'schedule', 'labelSmoothing', 'clipGradNorm', 'gradAccum',
  'decayNormBias', 'saveEvery', 'evalEachEpoch', 'evalBatchSize',
] as const;

type Resolved = Required<Pick<TrainOptions, 'epochs' | 'batchSize' | 'lr' | 'weightDecay' | 'betas' | 'eps' | 'seed' | 'shuffle' | 'valFraction' | 'warmupSteps' | 'schedule' | 'labelSmoothing' | 'gradAccum' | 'decayNormBias' | 'saveEvery' | 'evalEachEpoch' | 'subset'>> &
  TrainOptions & { augment: AugmentMode };

function resolveDefaults(o: TrainOptions): Resolved {
  const aug = o.augment === undefined || o.augment === true ? 'trivialaugment' : o.augment === false ? 'none' : o.augment;
  const r = {
    ...o,
    epochs: o.epochs ?? 10,
    batchSize: o.batchSize ?? 32,
    lr: o.lr ?? 3e-4,
    weightDecay: o.weightDecay ?? 1e-2,
    betas: o.betas ?? [0.9, 0.999],
    eps: o.eps ?? 1e-8,
    seed: o.seed ?? 0,
    shuffle: o.shuffle ?? true,
    augment: aug,
    valFraction: o.valFraction ?? 0.1,
    subset: o.subset ?? 1,
    warmupSteps: o.warmupSteps ?? 0,
    schedule: o.schedule ?? 'constant',
    labelSmoothing: o.labelSmoothing ?? 0,
    gradAccum: o.gradAccum ?? 1,
    decayNormBias: o.decayNormBias ?? true,
    saveEvery: o.saveEvery ?? 0,
    evalEachEpoch: o.evalEachEpoch ?? true,
  } as Resolved;
  const bad = (m: string) => new TrainError(m);
  const posInt = (k: 'epochs' | 'batchSize' | 'gradAccum') => {
    if (!Number.isInteger(r[k]) || r[k] < 1) throw bad(`${k} must be an integer >= 1, got ${r[k]}`);
  };
  posInt('epochs');
  posInt('batchSize');
  posInt('gradAccum');
  if (r.maxSteps !== undefined && !(Number.isInteger(r.maxSteps) && r.maxSteps >= 1)) throw bad(`maxSteps must be an integer >= 1, got ${r.maxSteps}`);
  if (!(Number.isFinite(r.lr) && r.lr >= 0)) throw bad(`--lr must be a finite number >= 0, got ${r.lr}`);
  if (!(Number.isFinite(r.weightDecay) && r.weightDecay >= 0)) throw bad(`--weight-decay must be >= 0, got ${r.weightDecay}`);
  if (!(r.labelSmoothing >= 0 && r.labelSmoothing <= 1)) throw bad(`--label-smoothing must be in [0, 1], got ${r.labelSmoothing}`);
  if (r.clipGradNorm !== undefined && !(r.clipGradNorm > 0)) throw bad(`--clip-grad-norm must be > 0, got ${r.clipGradNorm}`);
  if (!Number.isInteger(r.warmupSteps) || r.warmupSteps < 0) throw bad(`--warmup-steps must be an integer >= 0, got ${r.warmupSteps}`);
  if (r.schedule !== 'constant' && r.schedule !== 'cosine') throw bad(`--schedule must be 'constant' or 'cosine', got '${r.schedule}'`);
  if (!['none', 'light', 'trivialaugment'].includes(r.augment)) throw bad(`augment must be none, light or trivialaugment, got '${r.augment}'`);
  return r;
}

/** The learning rate of optimizer step `step` (0-based) of `total`: linear warmup, then constant or cosine to 0. */
export function lrAt(step: number, total: number, o: { lr: number; warmupSteps: number; schedule: 'constant' | 'cosine' }): number {
  if (o.warmupSteps > 0 && step < o.warmupSteps) return (o.lr * (step + 1)) / o.warmupSteps;
  if (o.schedule === 'constant') return o.lr;
  const span = Math.max(1, total - o.warmupSteps);
  const t = Math.min(1, (step - o.warmupSteps) / span);
  return 0.5 * o.lr * (1 + Math.cos(Math.PI * t));
}

/** Parameters that get no weight decay with --no-decay-norm-bias: biases and LayerNorm weights (all rank ≤ 1). */
export function isNormOrBias(name: string, p: Parameter): boolean {
  return p.shape.length <= 1 || name.endsWith('.bias');
}

// ---- batches ----------------------------------------------------------------------------------------------------

/** A training batch with the chosen augmentation ('trivialaugment': the data module's flip + TrivialAugmentWide). */
export function trainBatch(ds: PreparedDataset, indices: number[], mode: AugmentMode, o: { mean: number[]; std: number[]; seed: number; epoch: number }): Batch {
  // 'light': a horizontal flip (p = 0.5) and a shift of up to ±2 px, seeded per (seed, epoch, index).
  const light = (img: U8Image, idx: number): U8Image => {
    const rng = new Rng(mixSeed(o.seed, 0x11647, o.epoch, idx));
    if (rng.float() < 0.5) img = hflip(img);
    const dx = rng.int(5) - 2;
    const dy = rng.int(5) - 2;
    return dx || dy ? translate(img, dx, dy) : img;
  };
  const augment = mode === 'light' ? light : mode === 'trivialaugment';
  return makeBatch(ds, indices, { mean: o.mean, std: o.std, augment, seed: o.seed, epoch: o.epoch });
}

// ---- evaluation -------------------------------------------------------------------------------------------------

/** Mean loss, accuracy, per-class metrics and the confusion matrix of a model on a split (no augmentation). */
export async function evaluate(
  model: VisionTransformer,
  ds: PreparedDataset,
  o: { mean: number[]; std: number[]; labels: string[]; batchSize?: number; split?: string; onBatch?: (done: number, total: number) => void },
): Promise<EvalResult> {
  const B = o.batchSize ?? 64;
  const C = model.config.num_classes;
  const S = model.config.image_size;
  if (ds.imageSize !== S) throw new TrainError(`evaluate: the data is ${ds.imageSize}×${ds.imageSize} but the model takes ${S}×${S}`);
  const confusion = emptyConfusion(C);
  let lossSum = 0;
  const wasTraining = model.training;
  model.eval();
  try {
    const order = Array.from({ length: ds.length }, (_, i) => i);
    const batchFrom = (s: number) => makeBatch(ds, order.slice(s, s + B), { mean: o.mean, std: o.std, augment: false });
    let next = ds.length ? batchFrom(0) : null;
    for (let s = 0; s < ds.length; s += B) {
      const b = next!;
      const { loss, logits } = await noGrad(() =>
        scope(async () => {
          const out = model.forward(Tensor.from(b.x, [b.size, 3, S, S])).logits;
          const l = ops.crossEntropy(out, GpuArray.fromData(Float32Array.from(b.y), [b.size]));
          // the next batch is decoded while the GPU runs this one (as in training)
          flush();
          next = s + B < ds.length ? batchFrom(s + B) : null;
          return { loss: await l.item(), logits: await out.read() };
        }),
      );
      lossSum += loss * b.size;
      const pred = new Int32Array(b.size);
      for (let i = 0; i < b.size; i++) pred[i] = argmaxRow(logits, i, C);
      accumulateConfusion(confusion, b.y, pred);
      o.onBatch?.(Math.min(s + B, ds.length), ds.length);
    }
  } finally {
    model.train(wasTraining);
  }
  return { split: o.split ?? 'eval', loss: ds.length ? lossSum / ds.length : NaN, report: reportFromConfusion(confusion, o.labels) };
}

// ---- model set-up -------------------------------------------------------------------------------------------------

interface ModelSetup {
  config: VitConfig;
  initTensors?: Map<string, { shape: number[]; data: Float32Array }>;
  initMeta: { labels?: string[]; mean?: number[]; std?: number[] };
  notes: string[];
}

async function setupModel(o: Resolved, classes: string[]): Promise<ModelSetup> {
  const notes: string[] = [];
  if (o.init) {
    if (!existsSync(o.init)) throw new TrainError(`--init: ${o.init}: no such file`);
    const f = await readWeightsFile(o.init);
    const meta = f.format === 'safetensors' ? readCelluscanMetadata(f.metadata) : {};
    let config = meta.config;
    if (config && o.numHeads !== undefined && o.numHeads !== config.num_heads) {
      throw new TrainError(`--init ${o.init}: --num-heads ${o.numHeads} differs from the ${config.num_heads} heads its metadata records`);
    }
    if (!config) {
      const { inferConfig } = await import('../vit/config.js');
      try {
        const inf = inferConfig(new Map([...f.tensors].map(([k, t]) => [k, t.shape])), o.numHeads ?? o.config?.num_heads);
        config = inf.config;
        notes.push(...inf.notes);
      } catch (e) {
        throw new TrainError(`--init ${o.init}: ${(e as Error).message}`);
      }
    }
    config = { ...config, ...(o.config?.dropout !== undefined ? { dropout: o.config.dropout } : {}), ...(o.config?.attention_dropout !== undefined ? { attention_dropout: o.config.attention_dropout } : {}) };
    const tensors = new Map([...f.tensors].map(([k, t]) => [k, { shape: t.shape, data: t.data }]));
    const same = meta.labels && meta.labels.length === classes.length && meta.labels.every((l, i) => l === classes[i]);
    if (!o.newHead) {
      if (meta.labels && !same) {
        throw new TrainError(
          `--init ${o.init}: its labels [${meta.labels.join(', ')}] do not match the data's classes [${classes.join(', ')}] (same names in the same order are needed; ` +
            `pass --new-head to fine-tune with a fresh classification head)`,
        );
      }
      if (!meta.labels && config.num_classes !== classes.length) {
        throw new TrainError(`--init ${o.init}: the weights have ${config.num_classes} classes but the data has ${classes.length} (${classes.join(', ')}); pass --new-head to replace the head`);
      }
      if (!meta.labels) notes.push(`--init ${o.init} has no labels: taking the data's ${classes.length} classes in folder order`);
    } else {
      tensors.delete('heads.head.weight');
      tensors.delete('heads.head.bias');
      config = { ...config, num_classes: classes.length };
      notes.push(`classification head replaced: ${classes.length} classes (fresh initialisation)`);
    }
    return { config, initTensors: tensors, initMeta: { labels: meta.labels, mean: meta.mean, std: meta.std }, notes };
  }
  let config: VitConfig;
  if (o.config && Object.keys(o.config).length) {
    const base = o.model ? (VIT_PRESETS as Record<string, VitConfig>)[o.model] : undefined;
    config = { dropout: 0, attention_dropout: 0, ...(base ?? {}), ...o.config, num_classes: classes.length } as VitConfig;
  } else {
    const name = o.model ?? 'vit_b_16';
    if (!(name in VIT_PRESETS)) throw new TrainError(`--model: unknown ViT preset '${name}' (known: ${Object.keys(VIT_PRESETS).join(', ')})`);
    config = vitPreset(name as VitPresetName, { num_classes: classes.length });
  }
  try {
    validateConfig(config);
  } catch (e) {
    throw new TrainError((e as Error).message);
  }
  return { config, initMeta: {}, notes };
}

// ---- the run --------------------------------------------------------------------------------------------------------

function readJsonl(path: string): Record<string, unknown>[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        return null;
      }
    })
    .filter((x): x is Record<string, unknown> => x !== null);
}

/** Drop metrics lines past a checkpoint's step (the part of an interrupted run that --resume redoes). */
function truncateMetrics(path: string, step: number): void {
  const keep = readJsonl(path).filter((r) => typeof r.step !== 'number' || (r.step as number) <= step);
  writeFileSync(path, keep.map((r) => JSON.stringify(r)).join('\n') + (keep.length ? '\n' : ''));
}

// What --resume may change: how long the run goes on, how often it saves and evaluates, and where its data is now (the
// checkpoint's labels are checked against it). Every other run option decides the arithmetic (the batches, the updates),
// so a resumed run keeps its own: a different value would silently make a run that matches neither setting.
const RESUME_MAY_CHANGE = new Set<string>(['data', 'epochs', 'maxSteps', 'saveEvery', 'evalEachEpoch', 'evalBatchSize']);
const FLAG: Record<string, string> = {
  batchSize: '--batch-size', weightDecay: '--weight-decay', valFraction: '--val-fraction', warmupSteps: '--warmup-steps', labelSmoothing: '--label-smoothing',
  clipGradNorm: '--clip-grad-norm', gradAccum: '--grad-accum', decayNormBias: '--no-decay-norm-bias', newHead: '--new-head', augment: '--augment-mode',
  shuffle: '--no-shuffle',
};
const flagOf = (k: string) => FLAG[k] ?? `--${k}`;

/** The options given with --resume that differ from the run's own (saved in its checkpoint): one error names them all. */
function checkResumeOptions(saved: Partial<TrainOptions>, given: TrainOptions): void {
  const norm = (k: string, v: unknown) => (k === 'augment' ? (v === true ? 'trivialaugment' : v === false ? 'none' : v) : v);
  const show = (v: unknown) => (v === undefined ? 'unset' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  const diffs: string[] = [];
  if (given.init !== undefined) diffs.push(`--init ${given.init} (the checkpoint holds the weights)`);
  for (const k of RUN_KEYS) {
    if (k === 'init' || RESUME_MAY_CHANGE.has(k) || given[k] === undefined) continue;
    const a = norm(k, given[k]);
    const b = norm(k, saved[k]);
    if (JSON.stringify(a) !== JSON.stringify(b)) diffs.push(`${flagOf(k)} ${show(a)} (the run's: ${show(b)})`);
  }
  if (diffs.length) {
    throw new TrainError(
      `--resume continues a run with its own settings; these differ from it: ${diffs.join('; ')}. ` +
        `Only --data, --epochs, --max-steps, --save-every and --eval-batch-size may change; for other settings start a new run (another --out).`,
    );
  }
}

/**
 * Train per the options. Resolves when the run completes, is interrupted (checkpoint written) or diverges. A run that
 * fails before it has written anything leaves no empty --out folder behind (one it made).
 */
export async function train(input: TrainOptions): Promise<TrainResult> {
  const made = !existsSync(input.out);
  try {
    return await trainInto(input);
  } catch (e) {
    if (made && existsSync(input.out) && readdirSync(input.out).length === 0) rmdirSync(input.out);
    throw e;
  }
}

async function trainInto(input: TrainOptions): Promise<TrainResult> {
  const stream = input.stream ?? process.stdout;
  const say = (m: string) => stream.write(m + '\n');
  mkdirSync(input.out, { recursive: true });

  // Resume: the saved options, overridden by what was given now.
  let ck: Awaited<ReturnType<typeof loadCheckpoint>> | undefined;
  let opts: TrainOptions = input;
  if (input.resume) {
    ck = await loadCheckpoint(input.out);
    const saved = ck.state.options as Partial<TrainOptions>;
    const given = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) as TrainOptions;
    checkResumeOptions(saved, given);
    opts = { ...saved, ...given, init: undefined };
    say(`resuming ${input.out} at step ${ck.state.step} (epoch ${ck.state.epoch + 1}, batch ${ck.state.batchInEpoch})`);
  } else if (hasCheckpoint(input.out)) {
    throw new TrainError(`${input.out} already holds a run (${join(input.out, 'model.safetensors')}): pass --resume to continue it, or choose another --out`);
  } else {
    // files of a run without its checkpoint (killed while writing it): not overwritten by a new run
    const left = ['metrics.jsonl', 'optimizer.safetensors', 'summary.json'].filter((f) => existsSync(join(input.out, f)));
    if (left.length) {
      throw new TrainError(`${input.out} holds files of an earlier run (${left.join(', ')}) but no checkpoint to resume (model.safetensors): choose another --out, or move those files away first`);
    }
  }
  const o = resolveDefaults(opts);

  // Data first (every error about files before the GPU starts).
  const imageSizeHint = async (): Promise<number> => {
    if (ck) return ck.meta.config.image_size;
    if (o.init) {
      const f = await readWeightsFile(o.init);
      const md = f.format === 'safetensors' ? readCelluscanMetadata(f.metadata) : {};
      if (md.config) return md.config.image_size;
      const pos = f.tensors.get('encoder.pos_embedding')?.shape;
      const conv = f.tensors.get('conv_proj.weight')?.shape;
      if (pos && conv) return Math.round(Math.sqrt(pos[1] - 1)) * conv[2];
      throw new TrainError(`--init ${o.init}: cannot tell the image size (no celluscan_config and no pos_embedding/conv_proj)`);
    }
    if (o.config?.image_size) return o.config.image_size;
    const name = o.model ?? 'vit_b_16';
    const p = (VIT_PRESETS as Record<string, VitConfig>)[name];
    if (!p) throw new TrainError(`--model: unknown ViT preset '${name}' (known: ${Object.keys(VIT_PRESETS).join(', ')})`);
    return p.image_size;
  };
  const imageSize = await imageSizeHint();

  // Normalisation: given, else the checkpoint's / --init's, else computed from the training set.
  let mean = o.mean;
  let std = o.std;
  let initMeta: { mean?: number[]; std?: number[] } = {};
  if (ck) {
    mean ??= ck.meta.mean;
    std ??= ck.meta.std;
  } else if (o.init && (!mean || !std)) {
    const f = await readWeightsFile(o.init);
    initMeta = f.format === 'safetensors' ? readCelluscanMetadata(f.metadata) : {};
    mean ??= initMeta.mean;
    std ??= initMeta.std;
  }

  say(`loading data: ${o.data} at ${imageSize}×${imageSize}`);
  let data: DataBundle;
  try {
    data = await loadData({
      data: o.data,
      imageSize,
      seed: o.seed,
      subset: o.subset,
      valFraction: o.valFraction,
      mean,
      std,
      cacheDir: o.cacheDir,
      warn: (m) => say(`warning: ${m}`),
    });
  } catch (e) {
    if (e instanceof DataError) throw new TrainError(e.message);
    throw e;
  }
  try {
    return await runTraining(o, data, ck, stream, say);
  } finally {
    data.close();
  }
}

async function runTraining(
  o: Resolved,
  data: DataBundle,
  ck: Awaited<ReturnType<typeof loadCheckpoint>> | undefined,
  stream: ProgressStream,
  say: (m: string) => void,
): Promise<TrainResult> {
  const classes = data.classes;
  if (o.labels) {
    const want = isLabelPreset(o.labels) ? presetLabels(o.labels, classes.length) : o.labels.split(',');
    const same = want.length === classes.length && want.every((l, i) => l === classes[i]);
    if (!same) throw new TrainError(`--labels ${o.labels}: expected class folders [${want.join(', ')}] in that order, the data has [${classes.join(', ')}]`);
  }
  if (ck) {
    const same = ck.meta.labels.length === classes.length && ck.meta.labels.every((l, i) => l === classes[i]);
    if (!same) throw new TrainError(`--resume: the checkpoint's labels [${ck.meta.labels.join(', ')}] differ from the data's classes [${classes.join(', ')}]`);
    // A finished run: nothing to do, and nothing written (a second end-of-run would replace its summary).
    const total = Math.min(o.maxSteps ?? Infinity, o.epochs * Math.ceil(numBatches(data.train.length, o.batchSize) / o.gradAccum));
    // (all steps done but no summary: stopped during the final evaluation; resuming finishes it)
    if (ck.state.step >= total && summaryStatus(o.out) !== 'completed') say(`the run's ${total} steps are done; writing its final evaluation and summary`);
    else if (ck.state.step >= total) {
      throw new TrainError(`--resume: the run in ${o.out} is already complete (step ${ck.state.step} of ${total}); its files are left as they are. To train it further, pass a larger --epochs or --max-steps`);
    }
    const was = ck.state.options as Partial<TrainOptions>;
    if (o.schedule === 'cosine' && (was.epochs !== o.epochs || was.maxSteps !== o.maxSteps)) {
      say(`note: the cosine schedule now spans ${total} steps (--epochs/--max-steps changed): from step ${ck.state.step + 1} the learning rate differs from what the run would have had`);
    }
  }
  const { initGpu } = await import('../kernels/device.js');
  await initGpu();
  resetPeakMemory(); // the run's peak GPU memory (summary.json: gpu_memory) counts from here

  let setup: ModelSetup;
  if (ck) setup = { config: ck.meta.config, initMeta: {}, notes: [] };
  else setup = await setupModel(o, classes);
  for (const n of setup.notes) say(`note: ${n}`);
  const config = setup.config;
  if (config.image_size !== data.train.imageSize) throw new TrainError(`the model takes ${config.image_size}×${config.image_size} images, the data was prepared at ${data.train.imageSize}`);
  const mean = data.mean;
  const std = data.std;
  const labels = classes;

  const model = new VisionTransformer(config, { seed: o.seed, init: 'torchvision' });
  const named = [...model.namedParameters()];
  const groups: ParamGroup[] = o.decayNormBias
    ? [{ params: named.map(([, p]) => p) }]
    : [
        { params: named.filter(([n, p]) => !isNormOrBias(n, p)).map(([, p]) => p) },
        { params: named.filter(([n, p]) => isNormOrBias(n, p)).map(([, p]) => p), weightDecay: 0 },
      ];
  const opt = new AdamW(groups, { lr: o.lr, weightDecay: o.weightDecay, betas: o.betas, eps: o.eps });
  if (setup.initTensors) {
    if (o.newHead) {
      // Keep the fresh head, load everything else strictly.
      const cur = await model.stateDict();
      for (const k of ['heads.head.weight', 'heads.head.bias']) setup.initTensors.set(k, cur.get(k)!);
    }
    try {
      model.loadStateDict(setup.initTensors);
    } catch (e) {
      throw new TrainError(`--init ${o.init}: ${(e as Error).message}`);
    }
  }
  if (ck) restoreCheckpoint(ck, model, opt);
  model.train();

  const runDir = o.out;
  const metricsPath = join(runDir, 'metrics.jsonl');
  if (ck) truncateMetrics(metricsPath, ck.state.step);
  else writeFileSync(metricsPath, '');
  const emit = (rec: Record<string, unknown>) => appendFileSync(metricsPath, JSON.stringify(rec) + '\n');

  const train = data.train;
  const N = train.length;
  const B = o.batchSize;
  const nb = numBatches(N, B);
  const stepsPerEpoch = Math.ceil(nb / o.gradAccum);
  const totalSteps = Math.min(o.maxSteps ?? Infinity, o.epochs * stepsPerEpoch);
  const S = config.image_size;

  if (data.skipped.length) say(`skipped ${data.skipped.length} corrupt image${data.skipped.length > 1 ? 's' : ''}: ${data.skipped.map((s) => `${s.name} (${s.reason})`).join('; ')}`);
  say(
    `${data.layout}\ntrain ${N} images${data.val ? `, val ${data.val.length}` : ''}${data.test ? `, test ${data.test.length}` : ''}; ${classes.length} classes; ` +
      `mean [${mean.map((v) => v.toFixed(4)).join(', ')}] std [${std.map((v) => v.toFixed(4)).join(', ')}]${data.meanStdFromData ? ' (from the training set)' : ''}`,
  );
  // A class a split has no images of: its training gets no signal, and its val/test recall is undefined (the report
  // shows '—'); said now rather than discovered in the final table.
  for (const [split, ds] of [['train', data.train], ['val', data.val], ['test', data.test]] as const) {
    if (!ds || ds.length === 0) continue;
    const seen = new Set(ds.labels);
    const missing = classes.filter((_, c) => !seen.has(c));
    if (missing.length) say(`warning: the ${split} split has no images of ${missing.length} of ${classes.length} classes: ${missing.join(', ')}`);
  }
  say(
    `model: image ${config.image_size}, patch ${config.patch_size}, ${config.num_layers} layers, ${config.num_heads} heads, hidden ${config.hidden_dim}, mlp ${config.mlp_dim} ` +
      `(${model.numParameters().toLocaleString('en')} parameters)${o.init ? `, from ${o.init}` : ''}`,
  );
  say(
    `AdamW lr ${o.lr} (${o.schedule}${o.warmupSteps ? `, warmup ${o.warmupSteps}` : ''}), weight decay ${o.weightDecay}${o.decayNormBias ? '' : ' (none on norms/biases)'}, ` +
      `batch ${B}${o.gradAccum > 1 ? ` × ${Math.min(o.gradAccum, nb)} accumulated${o.gradAccum > nb ? ` (--grad-accum ${o.gradAccum}, but an epoch has ${nb} batches)` : ''}` : ''}, ${totalSteps} steps (${stepsPerEpoch}/epoch), augment ${o.augment}` +
      `${o.labelSmoothing ? `, label smoothing ${o.labelSmoothing}` : ''}${o.clipGradNorm ? `, clip grad norm ${o.clipGradNorm}` : ''}`,
  );

  // Which kernels run (the adapter's table, or what `celluscan tune` cached): recorded, since they decide speed and the
  // last bits of the numbers.
  const { gpu } = await import('../kernels/device.js');
  const { describeMatmulChoice } = await import('../kernels/autotune.js');
  const { describeAttentionChoice } = await import('../vit/attentionTuning.js');
  const { tunedRowChoices } = await import('../kernels/rowTuning.js');
  const kernels = {
    adapter: gpu().adapterKey,
    matmul: describeMatmulChoice(gpu().adapterKey),
    // Attention dropout needs the probabilities: the explicit path then, whatever the choice.
    attention_train: config.attention_dropout > 0 ? 'explicit (attention dropout)' : describeAttentionChoice(model.attentionChoice('train')),
    attention_eval: describeAttentionChoice(model.attentionChoice('infer')),
    // softmax / layernorm variants a tune measured for this adapter (kernel:cols → variant); the table's elsewhere
    rows_tuned: tunedRowChoices(gpu().adapterKey),
  };
  const tunedRows = Object.entries(kernels.rows_tuned).map(([k, v]) => `${k} ${v}`);
  say(
    `kernels on ${kernels.adapter}: matmul ${kernels.matmul}; attention ${kernels.attention_train} (training), ${kernels.attention_eval} (evaluation)` +
      (tunedRows.length ? `; row kernels tuned: ${tunedRows.join(', ')}` : ''),
  );

  const state = {
    step: ck?.state.step ?? 0,
    epoch: ck?.state.epoch ?? 0,
    batchInEpoch: ck?.state.batchInEpoch ?? 0,
    elapsedS: ck?.state.elapsedS ?? 0,
    images: ck?.state.images ?? 0,
  };
  const savedOptions = Object.fromEntries(RUN_KEYS.filter((k) => o[k] !== undefined).map((k) => [k, o[k]]));
  savedOptions.mean = mean;
  savedOptions.std = std;
  const meta = { config, labels, mean, std };
  let lastCheckpointStep = ck ? ck.state.step : -1;
  const checkpoint = async () => {
    await saveCheckpoint(runDir, model, opt, meta, { ...state, dropoutCounter: dropoutCounterOf(model), options: savedOptions });
    lastCheckpointStep = state.step;
  };

  // Ctrl-C: finish the step, checkpoint, stop. A second Ctrl-C exits at once.
  // The handler stays until the run's files are all written: after the last step, a Ctrl-C during the final checkpoint,
  // evaluation or summary lets them finish (a killed process there lost the run's only checkpoint).
  let interrupted = false;
  let finishing = false;
  const onSigint = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    progress.log(
      finishing
        ? 'interrupt: finishing the checkpoint, final evaluation and summary (Ctrl-C again to quit now)'
        : 'interrupt: stopping after this step and writing a checkpoint (Ctrl-C again to quit now)',
    );
  };
  const handle = o.handleSigint ?? true;
  if (handle) process.on('SIGINT', onSigint);

  const progress = new Progress(stream, { startStep: state.step });
  const t0 = performance.now();
  const elapsedBefore = state.elapsedS;
  let status: TrainResult['status'] = 'completed';
  let message: string | undefined;
  let lastLoss = NaN;
  let valResult: EvalResult | undefined;

  const runEval = async (split: 'val' | 'test' | 'train', ds: PreparedDataset) => {
    const r = await evaluate(model, ds, { mean, std, labels, batchSize: o.evalBatchSize ?? Math.max(B, 64), split });
    emit({ type: 'eval', split, step: state.step, epoch: state.epoch + (state.batchInEpoch >= nb ? 1 : 0), loss: r.loss, accuracy: r.report.accuracy, per_class: r.report.per_class });
    return r;
  };

  const makeTrainBatch = (order: number[], index: number) =>
    trainBatch(train, order.slice(index * B, (index + 1) * B), o.augment, { mean, std, seed: o.seed, epoch: state.epoch });
  // The batch made ahead (index `index` of the epoch whose order is `order`) while the GPU ran the one before it.
  let prefetched: { order: number[]; index: number; batch: Batch } | null = null;
  const batchAt = (order: number[], index: number): Batch => {
    const p = prefetched;
    prefetched = null;
    return p && p.order === order && p.index === index ? p.batch : makeTrainBatch(order, index);
  };

  try {
    outer: while (state.step < totalSteps && state.epoch < o.epochs) {
      const order = epochOrder(N, { shuffle: o.shuffle, seed: o.seed, epoch: state.epoch });
      while (state.batchInEpoch < nb && state.step < totalSteps) {
        const micro = Math.min(o.gradAccum, nb - state.batchInEpoch);
        const lr = lrAt(state.step, totalSteps, o);
        opt.setLr(lr);
        const ts = performance.now();
        let images = 0;
        let lossSum = 0;
        const stepNo = state.step + 1;
        const result = await scope(async () => {
          for (let k = 0; k < micro; k++) {
            const batch = batchAt(order, state.batchInEpoch + k);
            const x = Tensor.from(batch.x, [batch.size, 3, S, S]);
            const y = GpuArray.fromData(Float32Array.from(batch.y), [batch.size]);
            const logits = model.forward(x).logits;
            const loss = ops.crossEntropy(logits, y, { labelSmoothing: o.labelSmoothing });
            const scaled = micro > 1 ? ops.scale(loss, batch.size / sumSizes(nb, N, B, state.batchInEpoch, micro)) : loss;
            scaled.backward();
            // The GPU starts on this batch's forward and backward while the CPU decodes and augments the next one
            // (until now it waited for that, idle, after every step: ~40 ms for 32 images at 224 px with
            // TrivialAugmentWide here). The next batch is the same one either way: augmentation is seeded per
            // (seed, epoch, image).
            flush();
            const next = state.batchInEpoch + k + 1;
            if (next < nb && (k + 1 < micro || stepNo < totalSteps)) prefetched = { order, index: next, batch: makeTrainBatch(order, next) };
            let l = await loss.item();
            if (o.debugNanAtStep === stepNo) l = NaN;
            lossSum += l * batch.size;
            images += batch.size;
          }
          const stepLoss = lossSum / images;
          if (!Number.isFinite(stepLoss)) return { stepLoss, gradNorm: NaN };
          let gradNorm = NaN;
          if (o.clipGradNorm) gradNorm = await clipGradNorm(model.parameters(), o.clipGradNorm);
          opt.step();
          return { stepLoss, gradNorm };
        });
        opt.zeroGrad();
        if (!Number.isFinite(result.stepLoss)) {
          status = 'diverged';
          const kept = lastCheckpointStep >= 0 ? `the last good checkpoint (step ${lastCheckpointStep}) is kept in ${join(runDir, 'model.safetensors')}` : 'no checkpoint had been written yet';
          message = `loss is ${result.stepLoss} at step ${stepNo} (epoch ${state.epoch + 1}): training stopped; ${kept}. Try a lower --lr or --clip-grad-norm.`;
          emit({ type: 'error', step: stepNo, epoch: state.epoch + 1, loss: String(result.stepLoss), message });
          break outer;
        }
        const dt = (performance.now() - ts) / 1000;
        state.step = stepNo;
        state.batchInEpoch += micro;
        state.images += images;
        lastLoss = result.stepLoss;
        const ips = images / dt;
        emit({ type: 'step', step: state.step, epoch: state.epoch + 1, loss: result.stepLoss, lr, images_per_s: ips, ...(o.clipGradNorm ? { grad_norm: result.gradNorm } : {}) });
        progress.update({ step: state.step, totalSteps, epoch: state.epoch, loss: result.stepLoss, imagesPerS: ips, lr });
        state.elapsedS = elapsedBefore + (performance.now() - t0) / 1000;
        if (o.debugInterruptAtStep === state.step) interrupted = true;
        if (interrupted) {
          progress.clear();
          break outer;
        }
        if (o.saveEvery && state.step % o.saveEvery === 0 && state.step < totalSteps) await checkpoint();
      }
      if (state.batchInEpoch >= nb) {
        // End of an epoch: validation, checkpoint.
        if (data.val && o.evalEachEpoch && state.step < totalSteps) {
          progress.clear();
          valResult = await runEval('val', data.val);
          say(`epoch ${state.epoch + 1}: val loss ${valResult.loss.toFixed(4)}, accuracy ${(100 * valResult.report.accuracy).toFixed(2)}%`);
        }
        state.epoch++;
        state.batchInEpoch = 0;
        if (state.step < totalSteps) await checkpoint();
      }
    }
  } catch (e) {
    if (e instanceof CheckpointError) {
      status = 'diverged';
      message = `${e.message}; the last good checkpoint (step ${lastCheckpointStep}) is kept`;
    } else throw e;
  } finally {
    progress.finish();
  }
  // (an interrupt from here on is one during the last step's wrap-up: the run is finished, not cut short)
  const stoppedEarly = interrupted;
  finishing = true;
  try {
    return await finishRun();
  } finally {
    if (handle) process.removeListener('SIGINT', onSigint);
  }

  async function finishRun(): Promise<TrainResult> {
    state.elapsedS = elapsedBefore + (performance.now() - t0) / 1000;
    const files: string[] = [];
    let testResult: EvalResult | undefined;
    if (status === 'diverged') {
      say(`error: ${message}`);
    } else {
      await checkpoint();
      files.push(join(runDir, 'model.safetensors'), join(runDir, 'optimizer.safetensors'));
      if (stoppedEarly) {
        status = 'interrupted';
        message = `interrupted at step ${state.step}: checkpoint written to ${runDir}; continue with --resume`;
        say(message);
      } else {
        // Final evaluation: validation (unless just done), test when there is one.
        const lastEval = readJsonl(metricsPath).filter((r) => r.type === 'eval' && r.split === 'val').pop();
        if (data.val && (!lastEval || lastEval.step !== state.step)) valResult = await runEval('val', data.val);
        if (data.val && valResult) say(`val: loss ${valResult.loss.toFixed(4)}, accuracy ${(100 * valResult.report.accuracy).toFixed(2)}%`);
        if (data.test) {
          testResult = await runEval('test', data.test);
          say(`test: loss ${testResult.loss.toFixed(4)}, accuracy ${(100 * testResult.report.accuracy).toFixed(2)}%`);
        }
      }
    }

    // Plots from the whole metrics history (a resumed run included).
    const hist = readJsonl(metricsPath);
    const trainPts: StepPoint[] = hist.filter((r) => r.type === 'step').map((r) => ({ step: r.step as number, loss: r.loss as number }));
    const evalPts: EvalPoint[] = hist
      .filter((r) => r.type === 'eval' && r.split === 'val')
      .map((r) => ({ step: r.step as number, epoch: r.epoch as number, loss: r.loss as number, split: 'val' }));
    let cmSource = testResult ?? valResult;
    if (!cmSource && status === 'completed') cmSource = await runEval('train', data.train);
    const plotFiles = await writeTrainingPlots(runDir, {
      train: trainPts,
      evals: evalPts,
      confusion: cmSource ? { matrix: cmSource.report.confusion, labels, title: `Confusion matrix (${cmSource.split}, accuracy ${(100 * cmSource.report.accuracy).toFixed(2)}%)` } : undefined,
    });
    files.push(metricsPath, ...plotFiles);

    const wall = (performance.now() - t0) / 1000;
    const trainedHere = state.images - (ck?.state.images ?? 0);
    const summary: Record<string, unknown> = {
      status,
      ...(message ? { message } : {}),
      data: o.data,
      layout: data.layout,
      config,
      labels,
      mean,
      std,
      train_images: N,
      val_images: data.val?.length ?? 0,
      test_images: data.test?.length ?? 0,
      skipped: data.skipped,
      options: savedOptions,
      steps: state.step,
      total_steps: totalSteps,
      epochs_completed: state.epoch,
      wall_s: state.elapsedS,
      kernels,
      images_per_s: trainedHere / Math.max(1e-9, wall),
      // Peak: the most bytes of arrays alive at once in this process's run (weights, AdamW state, a step's activations and
      // gradients, the evaluations'); allocated: the buffer pool's buffers at the end (bucket sizes, free ones included).
      gpu_memory: { peak_mib: memoryStats().peakLiveBytes / 2 ** 20, allocated_mib: memoryStats().allocatedBytes / 2 ** 20 },
      final_train_loss: lastLoss,
      ...(valResult ? { val: { loss: valResult.loss, accuracy: valResult.report.accuracy, macro: valResult.report.macro } } : {}),
      ...(testResult ? { test: { loss: testResult.loss, accuracy: testResult.report.accuracy, macro: testResult.report.macro, per_class: testResult.report.per_class, confusion: testResult.report.confusion } } : {}),
      ...(cmSource ? { confusion_split: cmSource.split, confusion: cmSource.report.confusion } : {}),
    };
    writeAtomicSync(join(runDir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
    writeAtomicSync(join(runDir, 'summary.md'), summaryMarkdown(summary, cmSource, labels));
    files.push(join(runDir, 'summary.json'), join(runDir, 'summary.md'));
    model.dispose();
    opt.dispose();
    return {
      status,
      message,
      steps: state.step,
      epochs: state.epoch,
      wallS: state.elapsedS,
      imagesPerS: summary.images_per_s as number,
      finalLoss: lastLoss,
      val: valResult,
      test: testResult,
      skipped: data.skipped,
      files,
      summary,
    };
  }
}

/** The status a run folder's summary.json records, or undefined (none, or unreadable: a run stopped before it). */
function summaryStatus(dir: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8')) as { status?: string }).status;
  } catch {
    return undefined;
  }
}

/** Write a file whole or not at all (a temporary sibling renamed over it). */
function writeAtomicSync(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

/** Images in the micro-batches [first, first + micro) of an epoch (the last batch may be partial). */
function sumSizes(nb: number, N: number, B: number, first: number, micro: number): number {
  let s = 0;
  for (let k = first; k < first + micro && k < nb; k++) s += Math.min(B, N - k * B);
  return s;
}

/**
 * torch.nn.utils.clip_grad_norm_: the global L2 norm over every gradient (sum of squares on the GPU, one
 * read-back); when above maxNorm, every gradient is scaled by maxNorm / (norm + 1e-6). Returns the norm.
 */
export async function clipGradNorm(params: Parameter[], maxNorm: number): Promise<number> {
  const withGrad = params.filter((p) => p.grad);
  if (!withGrad.length) return 0;
  const total = await scope(async () => {
    const acc = GpuArray.zeros([1]);
    for (const p of withGrad) {
      const sq = unary('square', p.grad!);
      const s = sumK(sq.view([sq.size]), [0], false);
      addInPlace(acc, s.view([1]));
    }
    return Math.sqrt((await acc.read())[0]);
  });
  const coef = maxNorm / (total + 1e-6);
  if (coef < 1) {
    for (const p of withGrad) {
      const g = keep(affine(p.grad!, coef, 0, true)); // a new coefficient every step: a volatile uniform block
      p.grad!.dispose();
      p.grad = g;
    }
  }
  return total;
}

function summaryMarkdown(s: Record<string, unknown>, cm: EvalResult | undefined, labels: string[]): string {
  const c = s.config as VitConfig;
  const mem = s.gpu_memory as { peak_mib: number; allocated_mib: number };
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  const lines = [
    `# Training run`,
    '',
    `- status: **${s.status}**${s.message ? ` — ${s.message}` : ''}`,
    `- data: ${s.layout}`,
    `- images: train ${s.train_images}, val ${s.val_images}, test ${s.test_images}${(s.skipped as unknown[]).length ? `; skipped ${(s.skipped as unknown[]).length} corrupt` : ''}`,
    `- model: image ${c.image_size}, patch ${c.patch_size}, ${c.num_layers} layers, ${c.num_heads} heads, hidden ${c.hidden_dim}, mlp ${c.mlp_dim}, ${c.num_classes} classes`,
    `- steps: ${s.steps} of ${s.total_steps} (${s.epochs_completed} epochs completed), ${formatDuration(s.wall_s as number)} of training, ${(s.images_per_s as number).toFixed(1)} images/s`,
    `- final train loss: ${(s.final_train_loss as number).toFixed(4)}`,
    `- GPU memory: peak ${mem.peak_mib.toFixed(1)} MiB of arrays alive at once (weights, optimizer state, one step's activations and gradients), ${mem.allocated_mib.toFixed(1)} MiB held by the buffer pool at the end`,
  ];
  const v = s.val as { loss: number; accuracy: number } | undefined;
  const t = s.test as { loss: number; accuracy: number } | undefined;
  if (v) lines.push(`- validation: loss ${v.loss.toFixed(4)}, accuracy ${pct(v.accuracy)}`);
  if (t) lines.push(`- **test: loss ${t.loss.toFixed(4)}, accuracy ${pct(t.accuracy)}**`);
  lines.push('', `Options: \`${JSON.stringify(s.options)}\``, '', '![loss curves](loss_curves.png)', '');
  if (cm) {
    lines.push(`## Per-class metrics (${cm.split})`, '', '| class | precision | recall | F1 | support |', '| --- | ---: | ---: | ---: | ---: |');
    for (const l of labels) {
      const m = cm.report.per_class[l];
      lines.push(`| ${l} | ${m.precision.toFixed(3)} | ${m.recall.toFixed(3)} | ${m.f1.toFixed(3)} | ${m.support} |`);
    }
    lines.push('', '![confusion matrix](confusion_matrix.png)', '');
  }
  return lines.join('\n');
}

export { readJsonl };
