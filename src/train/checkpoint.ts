// Training checkpoints in a run folder, two safetensors files written atomically (temp file + rename each):
//
//   RUN/model.safetensors      the weights (torchvision names) + celluscan_config / _labels / _mean / _std metadata,
//                              so `celluscan predict/eval --weights RUN/model.safetensors` just works; plus
//                              celluscan_train_state (JSON: steps, epoch, position in the epoch, RNG state, the
//                              training options) for --resume
//   RUN/optimizer.safetensors  AdamW's moments: `<param>.exp_avg`, `<param>.exp_avg_sq` (torch's names), metadata
//                              { step, checkpoint } — `checkpoint` pairs it with the model file it was written with
//
// The optimizer file is renamed into place first: a crash between the two renames leaves a model file whose
// checkpoint id differs from the optimizer's, which loadCheckpoint() reports instead of resuming from a mismatch.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AdamW } from '../autograd/optim.js';
import type { VitConfig } from '../vit/config.js';
import type { VisionTransformer } from '../vit/model.js';
import { celluscanMetadata, parseSafetensors, readCelluscanMetadata, serializeSafetensors, type TensorData } from '../vit/safetensors.js';
import { writeFileAtomic } from '../vit/weightsFile.node.js';

export const MODEL_FILE = 'model.safetensors';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const TRAIN_STATE_KEY = 'celluscan_train_state';

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

/** Where a run stands: everything besides the tensors that --resume needs to continue bit for bit. */
export interface TrainState {
  /** Optimizer steps taken. */
  step: number;
  /** The epoch in progress (0-based). */
  epoch: number;
  /** Batches of that epoch already consumed (the epoch's order is re-derived from the seed). */
  batchInEpoch: number;
  /** The model's dropout-seed counter. */
  dropoutCounter: number;
  /** Wall seconds spent training so far (summed over resumed parts). */
  elapsedS: number;
  /** Images seen so far. */
  images: number;
  /** The options the run was started with (resume defaults). */
  options: Record<string, unknown>;
  /** A unique id pairing model and optimizer files. */
  checkpoint: string;
}

export interface CheckpointMeta {
  config: VitConfig;
  labels: string[];
  mean: number[];
  std: number[];
}

const finite = (a: Float32Array) => {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return false;
  return true;
};

/**
 * Read back the weights and moments and write both files. Throws (writing nothing) when a weight is not finite,
 * so a diverged run never overwrites its last good checkpoint.
 */
export async function saveCheckpoint(dir: string, model: VisionTransformer, opt: AdamW, meta: CheckpointMeta, state: Omit<TrainState, 'checkpoint'>): Promise<void> {
  const checkpoint = `${state.step}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const full: TrainState = { ...state, checkpoint };
  const weights = new Map<string, TensorData>();
  const moments = new Map<string, TensorData>();
  for (const [name, p] of model.namedParameters()) {
    const data = await p.read();
    if (!finite(data)) throw new CheckpointError(`parameter ${name} has non-finite values at step ${state.step}: checkpoint not written`);
    weights.set(name, { shape: [...p.shape], data });
    const s = opt.stateOf(p);
    if (s) {
      moments.set(`${name}.exp_avg`, { shape: [...p.shape], data: await s.m.read() });
      moments.set(`${name}.exp_avg_sq`, { shape: [...p.shape], data: await s.v.read() });
    }
  }
  const md = { ...celluscanMetadata(meta), [TRAIN_STATE_KEY]: JSON.stringify(full) };
  const optBytes = serializeSafetensors(moments, { format: 'pt', step: String(opt.stepCount), checkpoint });
  const modelBytes = serializeSafetensors(weights, md);
  await writeFileAtomic(join(dir, OPTIMIZER_FILE), optBytes);
  await writeFileAtomic(join(dir, MODEL_FILE), modelBytes);
}

export interface LoadedCheckpoint {
  meta: CheckpointMeta;
  state: TrainState;
  weights: Map<string, TensorData>;
  moments: Map<string, TensorData>;
  optimizerStep: number;
}

export function hasCheckpoint(dir: string): boolean {
  return existsSync(join(dir, MODEL_FILE));
}

/** Read a run folder's checkpoint (both files), checking that they belong together. */
export async function loadCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  const mf = join(dir, MODEL_FILE);
  const of = join(dir, OPTIMIZER_FILE);
  if (!existsSync(mf)) throw new CheckpointError(`--resume: no checkpoint in '${dir}' (${MODEL_FILE} is missing)`);
  if (!existsSync(of)) throw new CheckpointError(`--resume: ${of} is missing: the optimizer state is needed to continue the run`);
  // a damaged file (truncated, emptied) is named, as the fix is about that file
  const parse = async (f: string) => {
    try {
      return parseSafetensors(new Uint8Array(await readFile(f)));
    } catch (e) {
      throw new CheckpointError(`--resume: ${f} is damaged (${(e as Error).message}); the run cannot continue from it: start a new run in another --out`);
    }
  };
  const m = await parse(mf);
  const o = await parse(of);
  const cm = readCelluscanMetadata(m.metadata);
  if (!cm.config || !cm.labels || !cm.mean || !cm.std) throw new CheckpointError(`${mf}: not a training checkpoint (config, labels, mean and std metadata are needed)`);
  const raw = m.metadata[TRAIN_STATE_KEY];
  if (!raw) throw new CheckpointError(`${mf}: no ${TRAIN_STATE_KEY} metadata: not written by celluscan train, cannot resume`);
  let state: TrainState;
  try {
    state = JSON.parse(raw) as TrainState;
  } catch (e) {
    throw new CheckpointError(`${mf}: ${TRAIN_STATE_KEY} is not valid JSON: ${(e as Error).message}`);
  }
  if (o.metadata.checkpoint !== state.checkpoint) {
    throw new CheckpointError(`${of} (checkpoint ${o.metadata.checkpoint}) does not belong to ${mf} (checkpoint ${state.checkpoint}): the run was stopped while saving its checkpoint, which cannot be resumed: start a new run in another --out`);
  }
  return {
    meta: { config: cm.config, labels: cm.labels, mean: cm.mean, std: cm.std },
    state,
    weights: m.tensors,
    moments: o.tensors,
    optimizerStep: Number(o.metadata.step),
  };
}

/** Put a checkpoint's weights and moments into a model and its optimizer. */
export function restoreCheckpoint(ck: LoadedCheckpoint, model: VisionTransformer, opt: AdamW): void {
  model.loadStateDict(ck.weights);
  for (const [name, p] of model.namedParameters()) {
    const m = ck.moments.get(`${name}.exp_avg`);
    const v = ck.moments.get(`${name}.exp_avg_sq`);
    if (!m || !v) {
      if (ck.optimizerStep > 0) throw new CheckpointError(`optimizer state for ${name} is missing from ${OPTIMIZER_FILE}`);
      continue;
    }
    opt.setState(p, m.data, v.data);
  }
  opt.stepCount = ck.optimizerStep;
  (model as unknown as { dropoutCounter: number }).dropoutCounter = ck.state.dropoutCounter;
}

export function dropoutCounterOf(model: VisionTransformer): number {
  return (model as unknown as { dropoutCounter: number }).dropoutCounter;
}
