// The training track: metrics, the trainer's run folder (metrics.jsonl, plots, summaries, checkpoints), resume ==
// uninterrupted, NaN stops with the last good checkpoint kept, corrupt images skipped and reported, clear errors for
// an empty class folder and an --init label mismatch, eval against a hand-computed confusion matrix, the CLI.
// Tiny ViTs (image 16, 1 layer, hidden 32) on tiny synthetic PNG folders, so the file stays fast on lavapipe.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pngjs from 'pngjs';
import { afterAll, describe, expect, it } from 'vitest';
import { memoryStats } from '../src/kernels/memory.js';
import { loadCheckpoint } from '../src/train/checkpoint.js';
import { loadData } from '../src/train/data.js';
import { confusionMatrix, formatReport, reportFromConfusion, rowNormalise } from '../src/train/metrics.js';
import { getPreset, TRAIN_PRESETS } from '../src/train/presets.js';
import { Progress } from '../src/train/progress.js';
import { evaluate, lrAt, readJsonl, train, type TrainOptions } from '../src/train/trainer.js';
import { parseSafetensors, serializeSafetensors, celluscanMetadata } from '../src/vit/safetensors.js';
import { VisionTransformer } from '../src/vit/model.js';
import { expectedShapes } from '../src/vit/config.js';
import { useGpu } from './gpu.js';

useGpu();

const tmp = mkdtempSync(join(tmpdir(), 'celluscan-train-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const TINY = { image_size: 16, patch_size: 4, num_layers: 1, num_heads: 2, hidden_dim: 32, mlp_dim: 48 };
const CLASSES = ['circle', 'cross', 'square'];

/** A folder of per-class 16×16 RGB PNGs with a simple shape per class and noise. */
function makeFolder(root: string, per = 8, S = 16, classes = CLASSES): string {
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  classes.forEach((c, ci) => {
    mkdirSync(join(root, c), { recursive: true });
    for (let i = 0; i < per; i++) {
      const png = new pngjs.PNG({ width: S, height: S });
      for (let y = 0; y < S; y++) {
        for (let x = 0; x < S; x++) {
          const dx = x - S / 2;
          const dy = y - S / 2;
          const k = ci % 3;
          const on = k === 0 ? dx * dx + dy * dy < (S / 3) ** 2 : k === 1 ? Math.abs(dx) < 2 || Math.abs(dy) < 2 : Math.abs(dx) < S / 3 && Math.abs(dy) < S / 3;
          const v = Math.max(0, Math.min(255, Math.round((on ? 200 : 40) + (rnd() - 0.5) * 80)));
          const o = 4 * (y * S + x);
          png.data[o] = v;
          png.data[o + 1] = (v * 0.8) | 0;
          png.data[o + 2] = 255 - v;
          png.data[o + 3] = 255;
        }
      }
      writeFileSync(join(root, c, `img_${String(i).padStart(3, '0')}.png`), pngjs.PNG.sync.write(png));
    }
  });
  return root;
}

const DATA = makeFolder(join(tmp, 'data'));

function sink() {
  const lines: string[] = [];
  return { stream: { isTTY: false, write: (s: string) => (lines.push(s), true) }, text: () => lines.join('') };
}

function base(out: string, extra: Partial<TrainOptions> = {}): TrainOptions & { text: () => string } {
  const s = sink();
  return {
    data: DATA,
    out: join(tmp, out),
    config: TINY,
    epochs: 2,
    batchSize: 8,
    lr: 1e-3,
    seed: 3,
    cacheDir: false,
    handleSigint: false,
    stream: s.stream,
    text: s.text,
    ...extra,
  };
}

async function weightsOf(dir: string): Promise<Map<string, Float32Array>> {
  const f = parseSafetensors(new Uint8Array(readFileSync(join(dir, 'model.safetensors'))));
  return new Map([...f.tensors].map(([k, t]) => [k, t.data]));
}

describe('metrics', () => {
  it('confusion matrix, accuracy and per-class precision/recall/F1 match a hand computation', () => {
    const truth = [0, 0, 0, 1, 1, 2, 2, 2, 2, 0];
    const pred = [0, 1, 0, 1, 2, 2, 2, 0, 2, 0];
    const cm = confusionMatrix(truth, pred, 3);
    expect(cm).toEqual([
      [3, 1, 0],
      [0, 1, 1],
      [1, 0, 3],
    ]);
    const r = reportFromConfusion(cm, ['a', 'b', 'c']);
    expect(r.accuracy).toBeCloseTo(7 / 10, 12);
    // a: tp 3, predicted a 4 (3 + 1 from c), support 4
    expect(r.per_class.a.precision).toBeCloseTo(3 / 4, 12);
    expect(r.per_class.a.recall).toBeCloseTo(3 / 4, 12);
    expect(r.per_class.a.f1).toBeCloseTo(3 / 4, 12);
    // b: tp 1, predicted b 2, support 2
    expect(r.per_class.b.precision).toBeCloseTo(1 / 2, 12);
    expect(r.per_class.b.recall).toBeCloseTo(1 / 2, 12);
    // c: tp 3, predicted c 4, support 4
    expect(r.per_class.c).toEqual({ precision: 0.75, recall: 0.75, f1: 0.75, support: 4 });
    expect(r.macro.f1).toBeCloseTo((0.75 + 0.5 + 0.75) / 3, 12);
    expect(rowNormalise(cm)[1]).toEqual([0, 0.5, 0.5]);
    // A class never predicted: precision 0 (no division by zero), F1 0.
    const r2 = reportFromConfusion(confusionMatrix([0, 1], [0, 0], 2), ['x', 'y']);
    expect(r2.per_class.y).toEqual({ precision: 0, recall: 0, f1: 0, support: 1 });
    expect(formatReport(r, ['a', 'b', 'c'])).toMatch(/accuracy 70\.00% \(7\/10\)/);
    // A class with no items: recall and F1 shown as undefined (not 0, which reads as "every one missed"), said in a
    // note, and left out of the macro average; a class never predicted but present: precision '—', recall 0.
    const r3 = reportFromConfusion(confusionMatrix([0, 0, 1], [0, 0, 0], 3), ['x', 'y', 'z']);
    const t3 = formatReport(r3, ['x', 'y', 'z']);
    expect(t3).toMatch(/^z\s+—\s+—\s+—\s+0$/m);
    expect(t3).toMatch(/^y\s+—\s+0\.000\s+0\.000\s+1$/m);
    expect(t3).toMatch(/note: no images of z here: recall and F1 undefined \(—\), left out of the macro average \(over 2 of 3 classes\)/);
    expect(r3.macro.recall).toBeCloseTo(0.5, 12);
    expect(formatReport(r, ['a', 'b', 'c'])).not.toMatch(/note: no images/);
    expect(() => confusionMatrix([3], [0], 3)).toThrow(/true label 3/);
  });

  it('LR schedule: linear warmup, then constant or cosine to 0', () => {
    const o = { lr: 1, warmupSteps: 4, schedule: 'cosine' as const };
    expect([0, 1, 2, 3].map((s) => lrAt(s, 14, o))).toEqual([0.25, 0.5, 0.75, 1]);
    expect(lrAt(4, 14, o)).toBeCloseTo(1, 12);
    expect(lrAt(9, 14, o)).toBeCloseTo(0.5, 12);
    expect(lrAt(14, 14, o)).toBeCloseTo(0, 12);
    expect(lrAt(100, 14, { lr: 3e-4, warmupSteps: 0, schedule: 'constant' })).toBe(3e-4);
  });

  it('progress: plain lines when not a TTY, an in-place bar on a TTY', () => {
    const plain: string[] = [];
    const p = new Progress({ isTTY: false, write: (s: string) => plain.push(s) });
    p.update({ step: 1, totalSteps: 10, epoch: 0, loss: 2.3, imagesPerS: 12.5, lr: 1e-3 });
    expect(plain[0]).toMatch(/^step 1\/10 .*loss 2\.3000 +12\.5 img\/s.*ETA/);
    const tty: string[] = [];
    const q = new Progress({ isTTY: true, columns: 120, write: (s: string) => tty.push(s) });
    q.update({ step: 10, totalSteps: 10, epoch: 0, loss: 1, imagesPerS: 5, lr: 1e-3 });
    expect(tty[0]).toMatch(/^\r\x1b\[2K█+ 10\/10 loss 1\.0000/);
  });

  it('presets: the fashion-mnist recipes use the benchmarked model; celluscan needs --init', () => {
    expect(Object.keys(TRAIN_PRESETS)).toEqual(['fashion-mnist', 'fashion-mnist-p7', 'fashion-mnist-quick', 'celluscan']);
    const f = getPreset('fashion-mnist').options;
    expect(f.config).toMatchObject({ image_size: 28, patch_size: 4, num_layers: 4, num_heads: 4, hidden_dim: 64, mlp_dim: 128 });
    expect(f).toMatchObject({ epochs: 30, augment: 'light', lr: 1e-3, weightDecay: 0.05, warmupSteps: 500, labelSmoothing: 0.1 });
    // the quick preset and `bench train` use the patch-7 model (the issue's PyTorch comparison config)
    expect(getPreset('fashion-mnist-quick').options.config).toMatchObject({ patch_size: 7, hidden_dim: 64 });
    expect(getPreset('fashion-mnist-p7').options).toMatchObject({ epochs: 15, augment: 'none' });
    expect(getPreset('celluscan').options).toMatchObject({ model: 'vit_b_16', labels: 'wbc14', lr: 3e-4, weightDecay: 1e-2, requiresInit: true });
    expect(() => getPreset('nope')).toThrow(/unknown training preset 'nope'.*fashion-mnist/);
  });
});

describe('trainer', () => {
  it('writes metrics.jsonl (step and eval lines), checkpoints, decodable PNG plots and summaries; no GPU memory leak', async () => {
    const o = base('run-basic', { saveEvery: 2 });
    const before = memoryStats().liveArrays;
    const r = await train(o);
    expect(r.status).toBe('completed');
    // 3 classes × 8 images; val 0.1 → 1 per class; 21 train → 3 batches of 8 per epoch, 2 epochs
    expect(r.steps).toBe(6);
    expect(memoryStats().liveArrays).toBe(before);
    const lines = readJsonl(join(o.out, 'metrics.jsonl'));
    const steps = lines.filter((l) => l.type === 'step');
    expect(steps.map((l) => l.step)).toEqual([1, 2, 3, 4, 5, 6]);
    for (const l of steps) {
      expect(Object.keys(l).sort()).toEqual(['epoch', 'images_per_s', 'loss', 'lr', 'step', 'type']);
      expect(Number.isFinite(l.loss)).toBe(true);
      expect(l.images_per_s as number).toBeGreaterThan(0);
      expect(l.lr).toBe(1e-3);
    }
    expect(steps.map((l) => l.epoch)).toEqual([1, 1, 1, 2, 2, 2]);
    const evals = lines.filter((l) => l.type === 'eval');
    expect(evals.map((l) => [l.split, l.epoch])).toEqual([
      ['val', 1],
      ['val', 2],
    ]);
    const pc = evals[1].per_class as Record<string, { precision: number; recall: number; f1: number; support: number }>;
    expect(Object.keys(pc)).toEqual(CLASSES);
    expect(pc.circle.support).toBe(1);
    for (const f of ['loss_curves.png', 'confusion_matrix.png']) {
      const png = pngjs.PNG.sync.read(readFileSync(join(o.out, f)));
      expect(png.width).toBeGreaterThan(200);
      expect(png.height).toBeGreaterThan(100);
    }
    const summary = JSON.parse(readFileSync(join(o.out, 'summary.json'), 'utf8'));
    expect(summary).toMatchObject({ status: 'completed', steps: 6, labels: CLASSES, train_images: 21, val_images: 3 });
    expect(readFileSync(join(o.out, 'summary.md'), 'utf8')).toMatch(/# Training run[\s\S]*validation: loss/);
    // GPU memory: the peak holds at least the weights and AdamW's two moments (3 floats per parameter)
    const nParams = [...expectedShapes({ ...TINY, num_classes: 3, dropout: 0, attention_dropout: 0 }).values()].reduce((n, sh) => n + sh.reduce((a, b) => a * b, 1), 0);
    expect(summary.gpu_memory.peak_mib * 2 ** 20).toBeGreaterThanOrEqual(3 * 4 * nParams);
    expect(summary.gpu_memory.allocated_mib).toBeGreaterThan(0);
    expect(readFileSync(join(o.out, 'summary.md'), 'utf8')).toMatch(/GPU memory: peak [\d.]+ MiB/);
    // The checkpoint carries config, labels, mean/std and the optimizer state.
    const ck = await loadCheckpoint(o.out);
    expect(ck.meta.labels).toEqual(CLASSES);
    expect(ck.meta.config).toMatchObject({ ...TINY, num_classes: 3 });
    expect(ck.meta.mean).toHaveLength(3);
    expect(ck.optimizerStep).toBe(6);
    expect(ck.moments.get('heads.head.weight.exp_avg')!.shape).toEqual([3, 32]);
    expect(ck.moments.has('encoder.layers.encoder_layer_0.ln_1.bias.exp_avg_sq')).toBe(true);
    // A second run into the same folder without --resume is refused.
    await expect(train(base('run-basic'))).rejects.toThrow(/already holds a run.*--resume/);
  });

  it('warns at the start when a split has no images of a class (its recall would be undefined)', async () => {
    const root = join(tmp, 'data-missing-class');
    makeFolder(join(root, 'train'), 4);
    makeFolder(join(root, 'val'), 2);
    rmSync(join(root, 'val', 'square'), { recursive: true });
    const o = base('run-missing-class', { data: root, epochs: 1 });
    await train(o);
    expect(o.text()).toMatch(/warning: the val split has no images of 1 of 3 classes: square\n/);
    expect(o.text()).not.toMatch(/the train split has no images/);
  });

  it('--resume after an interrupt ends at the same weights as an uninterrupted run (shuffle, augmentation, dropout, cosine, clipping)', async () => {
    const extra: Partial<TrainOptions> = {
      config: { ...TINY, dropout: 0.1 },
      epochs: 3,
      augment: 'trivialaugment',
      schedule: 'cosine',
      warmupSteps: 2,
      clipGradNorm: 0.5,
      decayNormBias: false,
      labelSmoothing: 0.1,
    };
    const full = await train(base('run-full', extra));
    expect(full.steps).toBe(9);
    const first = base('run-split', extra);
    const a = await train({ ...first, debugInterruptAtStep: 4 });
    expect(a.status).toBe('interrupted');
    expect(a.steps).toBe(4);
    expect(first.text()).toMatch(/interrupted at step 4.*--resume/);
    const b = await train({ out: first.out, data: DATA, resume: true, cacheDir: false, handleSigint: false, stream: sink().stream });
    expect(b.status).toBe('completed');
    expect(b.steps).toBe(9);
    const w1 = await weightsOf(join(tmp, 'run-full'));
    const w2 = await weightsOf(first.out);
    for (const [k, v] of w1) expect(Array.from(w2.get(k)!), k).toEqual(Array.from(v));
    // The metrics history is the same step sequence and the same losses.
    const l1 = readJsonl(join(tmp, 'run-full', 'metrics.jsonl')).filter((l) => l.type === 'step');
    const l2 = readJsonl(join(first.out, 'metrics.jsonl')).filter((l) => l.type === 'step');
    expect(l2.map((l) => l.step)).toEqual(l1.map((l) => l.step));
    expect(l2.map((l) => l.loss)).toEqual(l1.map((l) => l.loss));
  });

  it('--resume keeps the run\'s own settings: a changed batch size or lr is refused, naming each; a finished run is left as it is; --epochs may extend it', async () => {
    const first = base('run-resume-rules');
    const a = await train({ ...first, debugInterruptAtStep: 2 });
    expect(a.status).toBe('interrupted');
    const again = (extra: Partial<TrainOptions>) => train({ out: first.out, data: DATA, resume: true, cacheDir: false, handleSigint: false, stream: sink().stream, ...extra });
    await expect(again({ batchSize: 4, lr: 5 })).rejects.toThrow(/these differ from it: --batch-size 4 \(the run's: 8\); --lr 5 \(the run's: 0\.001\)\. Only --data, --epochs/);
    await expect(again({ augment: 'light' })).rejects.toThrow(/--augment-mode light \(the run's: trivialaugment\)/);
    // the same values as the run's are no change
    const b = await again({ batchSize: 8, lr: 1e-3 });
    expect(b.status).toBe('completed');
    expect(b.steps).toBe(6);
    // finished: refused before anything is written
    const files = ['summary.md', 'summary.json', 'metrics.jsonl'].map((f) => readFileSync(join(first.out, f), 'utf8'));
    await expect(again({})).rejects.toThrow(/already complete \(step 6 of 6\); its files are left as they are.*--epochs or --max-steps/);
    expect(['summary.md', 'summary.json', 'metrics.jsonl'].map((f) => readFileSync(join(first.out, f), 'utf8'))).toEqual(files);
    // a longer run from there
    const c = await again({ epochs: 3 });
    expect(c.status).toBe('completed');
    expect(c.steps).toBe(9);
  });

  it('a run stopped after its last step is finished by --resume (evaluation, summary); a folder with run files but no checkpoint is not overwritten', async () => {
    const first = base('run-finish');
    const a = await train({ ...first, debugInterruptAtStep: 6 }); // the last of 6 steps
    expect(a.status).toBe('interrupted');
    const again = () => train({ out: first.out, data: DATA, resume: true, cacheDir: false, handleSigint: false, stream: sink().stream });
    const b = await again();
    expect(b.status).toBe('completed');
    expect(b.steps).toBe(6);
    expect(b.val).toBeDefined();
    expect(JSON.parse(readFileSync(join(first.out, 'summary.json'), 'utf8')).status).toBe('completed');
    await expect(again()).rejects.toThrow(/already complete/);
    // a run's optimizer file given as weights: named, and what it is said
    const { loadModelFromSafetensors } = await import('../src/vit/predict.js');
    const of = join(first.out, 'optimizer.safetensors');
    expect(() => loadModelFromSafetensors(new Uint8Array(readFileSync(of)), of)).toThrow(/optimizer\.safetensors: cannot infer the ViT config: .*optimizer\.safetensors holds AdamW's state/);
    // a damaged checkpoint file is named
    const mf = join(first.out, 'model.safetensors');
    const whole = readFileSync(mf);
    writeFileSync(mf, whole.subarray(0, whole.length - 100));
    await expect(again()).rejects.toThrow(/--resume: .*model\.safetensors is damaged \(.*\); the run cannot continue from it/);
    writeFileSync(mf, whole);
    // run files without model.safetensors (killed while writing it): a new run refuses the folder
    rmSync(join(first.out, 'model.safetensors'));
    const metrics = readFileSync(join(first.out, 'metrics.jsonl'), 'utf8');
    await expect(train(base('run-finish'))).rejects.toThrow(/holds files of an earlier run \(metrics\.jsonl, optimizer\.safetensors, summary\.json\) but no checkpoint/);
    expect(readFileSync(join(first.out, 'metrics.jsonl'), 'utf8')).toBe(metrics);
  });

  it('--grad-accum 2 at batch 4 trains as batch 8: the same images per step (made ahead within the step too), the same losses', async () => {
    // Batches of 4 accumulated in pairs cover the images of batches of 8 (the epoch's last step: 4 + a remainder,
    // weighted by size), so each step's loss and gradient are the same sums in another order: f32 rounding (~1e-7
    // relative per sum) is all that may differ, far below what one wrong image does to a step's loss (~1e-2 here).
    const extra: Partial<TrainOptions> = { epochs: 2, augment: 'trivialaugment', lr: 1e-2 };
    const big = await train(base('run-b8', { ...extra, batchSize: 8 }));
    const acc = await train(base('run-b4x2', { ...extra, batchSize: 4, gradAccum: 2 }));
    expect(acc.steps).toBe(big.steps);
    const l1 = readJsonl(join(tmp, 'run-b8', 'metrics.jsonl')).filter((l) => l.type === 'step').map((l) => l.loss as number);
    const l2 = readJsonl(join(tmp, 'run-b4x2', 'metrics.jsonl')).filter((l) => l.type === 'step').map((l) => l.loss as number);
    expect(l2.length).toBe(l1.length);
    for (let i = 0; i < l1.length; i++) expect(Math.abs(l2[i] - l1[i]), `step ${i + 1}: ${l2[i]} vs ${l1[i]}`).toBeLessThanOrEqual(1e-4 * Math.abs(l1[i]));
  });

  it('a NaN loss stops the run with a message naming the step and keeps the last good checkpoint', async () => {
    const o = base('run-nan', { saveEvery: 2, epochs: 3 });
    const r = await train({ ...o, debugNanAtStep: 5 });
    expect(r.status).toBe('diverged');
    expect(r.message).toMatch(/loss is NaN at step 5 \(epoch 2\).*last good checkpoint \(step 4\)/);
    expect(o.text()).toMatch(/error: loss is NaN at step 5/);
    const ck = await loadCheckpoint(o.out);
    expect(ck.state.step).toBe(4);
    for (const [k, t] of ck.weights) expect(t.data.every(Number.isFinite), k).toBe(true);
    const last = readJsonl(join(o.out, 'metrics.jsonl')).pop()!;
    expect(last).toMatchObject({ type: 'error', step: 5 });
  });

  it('a huge learning rate diverges to a non-finite loss and stops cleanly', async () => {
    const o = base('run-lr', { lr: 1e12, epochs: 20, saveEvery: 1, augment: 'none' });
    const r = await train(o);
    expect(r.status).toBe('diverged');
    expect(r.message).toMatch(/(loss is (NaN|Infinity|-Infinity) at step \d+|non-finite values at step \d+)/);
    const ck = await loadCheckpoint(o.out);
    for (const [k, t] of ck.weights) expect(t.data.every(Number.isFinite), k).toBe(true);
  });

  it('skips a corrupt image among good ones and reports it', async () => {
    const d = makeFolder(join(tmp, 'data-corrupt'), 6);
    writeFileSync(join(d, 'cross', 'broken.png'), new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3, 4, 5]));
    const o = base('run-corrupt', { data: d, epochs: 1, valFraction: 0 });
    const r = await train(o);
    expect(r.status).toBe('completed');
    expect(r.skipped).toHaveLength(1);
    expect(r.skipped[0].name).toMatch(/broken\.png$/);
    expect(o.text()).toMatch(/skipped 1 corrupt image: .*broken\.png/);
    const summary = JSON.parse(readFileSync(join(o.out, 'summary.json'), 'utf8'));
    expect(summary.train_images).toBe(18);
    expect(summary.skipped).toHaveLength(1);
  });

  it('an empty class folder and an --init label mismatch are clear errors', async () => {
    const d = makeFolder(join(tmp, 'data-empty'), 3);
    mkdirSync(join(d, 'zzz_empty'));
    await expect(train(base('run-empty', { data: d }))).rejects.toThrow(/empty class folder.*'zzz_empty'/);
    // Weights whose labels differ from the data's classes.
    const cfg = { ...TINY, num_classes: 3, dropout: 0, attention_dropout: 0 };
    const m = new VisionTransformer(cfg);
    const sd = await m.stateDict();
    m.dispose();
    const w = join(tmp, 'other-labels.safetensors');
    writeFileSync(w, serializeSafetensors(sd, celluscanMetadata({ config: cfg, labels: ['cat', 'dog', 'bird'], mean: [0.5, 0.5, 0.5], std: [0.2, 0.2, 0.2] })));
    await expect(train(base('run-mismatch', { config: undefined, init: w }))).rejects.toThrow(
      /--init .*other-labels\.safetensors: its labels \[cat, dog, bird\] do not match the data's classes \[circle, cross, square\].*--new-head/,
    );
  });

  it('--init weights with no config (torchvision keys only): --num-heads supplies the heads; a failed run leaves no empty --out', async () => {
    const cfg = { ...TINY, num_classes: 3, dropout: 0, attention_dropout: 0 };
    const m = new VisionTransformer(cfg);
    const sd = await m.stateDict();
    m.dispose();
    const w = join(tmp, 'bare.safetensors');
    writeFileSync(w, serializeSafetensors(sd)); // no celluscan metadata: the config is inferred from the shapes
    // hidden 32 is not a multiple of 64, so the heads cannot be guessed
    const o = base('run-bare', { config: undefined, init: w, epochs: 1 });
    await expect(train(o)).rejects.toThrow(/--init .*bare\.safetensors: num_heads cannot be read from the weights.*--num-heads/);
    expect(existsSync(o.out)).toBe(false);
    await expect(train({ ...o, numHeads: 3 })).rejects.toThrow(/--init .*bare\.safetensors: invalid ViT config: hidden_dim 32 is not divisible by num_heads 3/);
    expect(existsSync(o.out)).toBe(false);
    const r = await train({ ...o, numHeads: 2 });
    expect(r.status).toBe('completed');
    expect(r.summary.config).toMatchObject({ num_heads: 2, hidden_dim: 32 });
  });

  it('evaluate: the confusion matrix equals one computed by hand from the logits', async () => {
    const data = await loadData({ data: DATA, imageSize: 16, valFraction: 0, cacheDir: false, mean: [0.4, 0.3, 0.6], std: [0.3, 0.25, 0.3], warn: () => {} });
    const m = new VisionTransformer({ ...TINY, num_classes: 3, dropout: 0, attention_dropout: 0 }, { init: 'random', seed: 5 });
    try {
      const r = await evaluate(m, data.train, { mean: data.mean, std: data.std, labels: CLASSES, batchSize: 5 });
      const { makeBatch } = await import('../src/train/data.js');
      const all = makeBatch(data.train, [...Array(data.train.length).keys()], { mean: data.mean, std: data.std });
      const logits = await m.predictLogits(all.x, all.size);
      const hand = [
        [0, 0, 0],
        [0, 0, 0],
        [0, 0, 0],
      ];
      let lossSum = 0;
      for (let i = 0; i < all.size; i++) {
        const row = Array.from(logits.subarray(3 * i, 3 * i + 3));
        const p = row.indexOf(Math.max(...row));
        hand[all.y[i]][p]++;
        const mx = Math.max(...row);
        lossSum += Math.log(row.reduce((s, v) => s + Math.exp(v - mx), 0)) + mx - row[all.y[i]];
      }
      expect(r.report.confusion).toEqual(hand);
      expect(r.report.count).toBe(24);
      expect(r.loss).toBeCloseTo(lossSum / all.size, 4);
    } finally {
      m.dispose();
      data.close();
    }
  });
});

describe('CLI', () => {
  const cli = (args: string[]) =>
    spawnSync(process.execPath, ['bin/celluscan.mjs', ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' } });

  it('celluscan eval names a weights file it cannot use, as predict does', () => {
    const text = join(tmp, 'not-weights.txt');
    writeFileSync(text, 'hello\n');
    const pth = join(tmp, 'torch.pth');
    writeFileSync(pth, Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), Buffer.alloc(64)])); // a zip: torch.save's format
    const cases: [string, RegExp][] = [
      [text, /^celluscan: .*not-weights\.txt: not a safetensors file/m],
      [pth, /^celluscan: .*torch\.pth is a PyTorch \(zip\) checkpoint, not safetensors: convert it first/m],
      [join(tmp, 'missing.safetensors'), /^celluscan: .*missing\.safetensors: cannot read the weights file: no such file/m],
    ];
    for (const [w, msg] of cases) {
      const r = cli(['eval', '--weights', w, '--data', DATA]);
      expect(r.status, w).toBe(1);
      expect(r.stderr).toMatch(msg);
    }
  });

  it('celluscan train refuses options that cannot take effect together, naming them', () => {
    const out = join(tmp, 'run-conflicts');
    const cases: [string[], RegExp][] = [
      [['--no-augment', '--augment-mode', 'trivialaugment'], /--no-augment and --augment-mode trivialaugment contradict each other/],
      [['--new-head'], /--new-head replaces the head of --init weights; give --init W too/],
      [['--num-heads', '2'], /--num-heads is for --init torch checkpoints/],
      [['--resume', '--preset', 'fashion-mnist'], /--preset does not apply with --resume/],
    ];
    for (const [args, msg] of cases) {
      const r = cli(['train', '--data', DATA, '--out', out, ...args]);
      expect(r.status, args.join(' ')).toBe(1);
      expect(r.stderr).toMatch(msg);
      expect(existsSync(out), args.join(' ')).toBe(false);
    }
    // commander's own usage errors: the error and a one-line hint, not the whole help
    const u = cli(['train', '--data', DATA, '--out', out, '--epochs']);
    expect(u.status).not.toBe(0);
    expect(u.stderr.split('\n').filter((l) => l && !l.startsWith('Warning:'))).toEqual(["error: option '--epochs <n>' argument missing", '(add --help for the options)']);
  });

  it('celluscan train then eval --json (metrics match the run) and the printed table', () => {
    const out = join(tmp, 'run-cli');
    const cfg = join(tmp, 'tiny.json');
    writeFileSync(cfg, JSON.stringify(TINY));
    const t = cli(['train', '--data', DATA, '--out', out, '--config', cfg, '--epochs', '1', '--batch-size', '8', '--no-augment', '--val-fraction', '0', '--seed', '1']);
    expect(t.status, t.stderr + t.stdout).toBe(0);
    expect(t.stdout).toMatch(/step 1\/3 .*loss .*img\/s.*ETA/);
    expect(t.stdout).toMatch(/done: 3 steps/);
    expect(existsSync(join(out, 'confusion_matrix.png'))).toBe(true);
    const e = cli(['eval', '--weights', join(out, 'model.safetensors'), '--data', DATA, '--split', 'train', '--val-fraction', '0', '--json']);
    expect(e.status, e.stderr).toBe(0);
    const j = JSON.parse(e.stdout);
    expect(j.confusion.flat().reduce((a: number, b: number) => a + b, 0)).toBe(24);
    expect(Object.keys(j.per_class)).toEqual(CLASSES);
    const fromRun = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(j.confusion).toEqual(fromRun.confusion);
    const e2 = cli(['eval', '--weights', join(out, 'model.safetensors'), '--data', DATA, '--split', 'test']);
    expect(e2.status).toBe(1);
    expect(e2.stderr).toMatch(/--split test: the data has no test split \(it has train, val\)/);
    const e3 = cli(['eval', '--weights', join(out, 'model.safetensors'), '--data', DATA, '--split', 'val']);
    expect(e3.status, e3.stderr).toBe(0);
    expect(e3.stdout).toMatch(/accuracy [\d.]+% \(\d+\/3\)[\s\S]*precision  recall[\s\S]*confusion matrix/);
  });

  it('celluscan tune caches an attention choice for the model; train then uses it and records it (not with CELLUSCAN_TUNING=off)', () => {
    const cfg = join(tmp, 'tiny-tune.json');
    writeFileSync(cfg, JSON.stringify(TINY));
    const cacheEnv = { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp', XDG_CACHE_HOME: join(tmp, 'xdg-cache'), CELLUSCAN_TUNING: '' };
    const run = (args: string[], env: NodeJS.ProcessEnv) => spawnSync(process.execPath, ['bin/celluscan.mjs', ...args], { encoding: 'utf8', timeout: 120_000, env });
    // One candidate: the choice is that variant whatever the timings, so the test does not depend on a race.
    const t = run(['tune', '--model', cfg, '--batch', '8', '--runs', '1', '--only', 'attention', '--mode', 'train', '--attention-variants', 'rows', '--json'], cacheEnv);
    expect(t.status, t.stderr).toBe(0);
    const j = JSON.parse(t.stdout);
    expect(j.attention).toHaveLength(1);
    expect(j.attention[0]).toMatchObject({ shape: 'N17 D16 train', batch: 8, heads: 2, choice: { path: 'fused', variant: 'rows' }, fromCache: false });
    expect(j.files).toEqual([join(tmp, 'xdg-cache', 'celluscan', 'attention-autotune.json')]);
    // `info` shows what the kernels default to, tuned choices included
    const info = run(['info', '--json'], cacheEnv);
    expect(info.status, info.stderr).toBe(0);
    expect(JSON.parse(info.stdout).kernels).toMatchObject({ attentionDefault: expect.stringMatching(/explicit$/), attentionTuned: { 'N17 D16 train': 'fused rows' }, matmulTuned: false });
    const infoText = run(['info'], cacheEnv);
    expect(infoText.stdout).toMatch(/attention +tuned N17 D16 train: fused rows; other shapes (.+, else )?explicit \(default\)/);
    expect(JSON.parse(run(['info', '--json'], { ...cacheEnv, CELLUSCAN_TUNING: 'off' }).stdout).kernels.attentionTuned).toEqual({});
    const common = ['--data', DATA, '--config', cfg, '--epochs', '1', '--batch-size', '8', '--no-augment', '--val-fraction', '0', '--seed', '1'];
    const tuned = run(['train', '--out', join(tmp, 'run-tuned'), ...common], cacheEnv);
    expect(tuned.status, tuned.stderr).toBe(0);
    expect(tuned.stdout).toMatch(/kernels on \S+: matmul [^;]+; attention fused rows \(tuned\) \(training\), explicit \(evaluation\)/);
    expect(JSON.parse(readFileSync(join(tmp, 'run-tuned', 'summary.json'), 'utf8')).kernels).toMatchObject({ attention_train: 'fused rows (tuned)', attention_eval: 'explicit' });
    const off = run(['train', '--out', join(tmp, 'run-untuned'), ...common], { ...cacheEnv, CELLUSCAN_TUNING: 'off' });
    expect(off.status, off.stderr).toBe(0);
    expect(off.stdout).toMatch(/attention explicit \(training\), explicit \(evaluation\)/);
    const bad = run(['tune', '--model', 'vit_z'], cacheEnv);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^celluscan: tune: unknown model 'vit_z' \(known: fmnist, vit_ti_16, .*, a training preset \(fashion-mnist, .*\), a \.safetensors model, or a \.json VitConfig\)$/m);
  });

  it('Ctrl-C (a real SIGINT) checkpoints at the next step boundary and exits 130; --resume ends at the uninterrupted weights', async () => {
    const cfg = join(tmp, 'tiny-sigint.json');
    writeFileSync(cfg, JSON.stringify(TINY));
    const common = ['--data', DATA, '--config', cfg, '--epochs', '4', '--batch-size', '8', '--seed', '2', '--lr', '1e-3'];
    const ref = base('run-sigint-ref', { epochs: 4, seed: 2, data: DATA, config: TINY, batchSize: 8, lr: 1e-3 });
    const full = await train(ref);
    expect(full.steps).toBe(12);
    const out = join(tmp, 'run-sigint');
    const child = spawn(process.execPath, ['bin/celluscan.mjs', 'train', '--out', out, ...common], { env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' } });
    let stdout = '';
    let sent = false;
    const code = await new Promise<number | null>((resolve) => {
      child.stdout.on('data', (d) => {
        stdout += d;
        if (!sent && /step 1\/12/.test(stdout)) {
          sent = true;
          child.kill('SIGINT');
        }
      });
      child.stderr.on('data', () => {});
      child.on('exit', (c) => resolve(c));
    });
    expect(sent, stdout).toBe(true);
    expect(code, stdout).toBe(130);
    expect(stdout).toMatch(/interrupt: stopping after this step/);
    const m = /interrupted at step (\d+)/.exec(stdout);
    expect(m, stdout).not.toBeNull();
    const stoppedAt = Number(m![1]);
    expect(stoppedAt).toBeGreaterThanOrEqual(1);
    expect(stoppedAt).toBeLessThan(12);
    expect((await loadCheckpoint(out)).state.step).toBe(stoppedAt);
    const r = cli(['train', '--out', out, '--data', DATA, '--resume']);
    expect(r.status, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`resuming .* at step ${stoppedAt}`));
    const w1 = await weightsOf(ref.out);
    const w2 = await weightsOf(out);
    for (const [k, v] of w1) expect(Array.from(w2.get(k)!), k).toEqual(Array.from(v));
  });
});
