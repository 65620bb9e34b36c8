// The attention path per adapter and shape (src/vit/attentionTuning.ts): the default table, a tuned choice that the
// model follows, the measured autotune with its correctness gate, margin and cache file, and the CLI's loader.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zipSync } from 'fflate';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { noGrad, Tensor } from '../src/autograd/tensor.js';
import { defaultAttentionVariant } from '../src/kernels/attention.js';
import { gpu } from '../src/kernels/device.js';
import { setPassHook } from '../src/kernels/launch.js';
import { scope } from '../src/kernels/memory.js';
import { subgroupSize } from '../src/kernels/matmul.js';
import { randomArray } from '../src/kernels/ref/math.js';
import {
  attentionChoiceFor,
  defaultAttentionChoice,
  autotuneAttention,
  clearAttentionChoices,
  describeAttentionChoice,
  loadAttentionTuning,
  setAttentionChoice,
} from '../src/vit/attentionTuning.js';
import { VisionTransformer, type ForwardOptions } from '../src/vit/model.js';
import { useGpu } from './gpu.js';
import { benchModel } from '../bench/train.js';
import { TRAIN_PRESETS } from '../src/train/presets.js';

// image 16 / patch 4: N = 17 tokens, head dimension 32 / 2 = 16.
const TINY = { image_size: 16, patch_size: 4, num_layers: 1, num_heads: 2, hidden_dim: 32, mlp_dim: 48, num_classes: 3, dropout: 0, attention_dropout: 0, representation_size: null };

describe('attention path choice', () => {
  useGpu();
  const cacheDir = mkdtempSync(join(tmpdir(), 'celluscan-tune-'));
  const savedXdg = process.env.XDG_CACHE_HOME;
  process.env.XDG_CACHE_HOME = cacheDir;
  afterEach(() => clearAttentionChoices());
  afterAll(() => {
    if (savedXdg === undefined) delete process.env.XDG_CACHE_HOME;
    else process.env.XDG_CACHE_HOME = savedXdg;
    rmSync(cacheDir, { recursive: true, force: true });
  });

  it('defaults to the table, follows a choice set for an adapter and shape, and rejects unknown ones', () => {
    const key = gpu().adapterKey;
    // the table: fused subgroup-saved on llvmpipe from ViT-B/16's shape up (measured), explicit elsewhere
    expect(defaultAttentionChoice(197, 64, 'train', 'llvmpipe')).toEqual(subgroupSize() !== null || key !== 'llvmpipe' ? { path: 'fused', variant: 'subgroup-saved' } : { path: 'explicit' });
    expect(defaultAttentionChoice(257, 80, 'infer', 'llvmpipe').path).toBe(defaultAttentionChoice(197, 64, 'infer', 'llvmpipe').path);
    for (const [n, d] of [[50, 64], [196, 64], [197, 32], [17, 16]]) expect(defaultAttentionChoice(n, d, 'train', 'llvmpipe')).toEqual({ path: 'explicit' });
    for (const a of ['swiftshader', 'some-gpu']) expect(defaultAttentionChoice(197, 64, 'train', a)).toEqual({ path: 'explicit' });
    // NVIDIA (measured on an H100, clocks up): flash-ds for training, flash for inference, at ViT-B/16's shape and up
    for (const a of ['nvidia-h100', 'nvidia-h200']) {
      expect(defaultAttentionChoice(197, 64, 'train', a)).toEqual({ path: 'fused', variant: 'flash-ds' });
      expect(defaultAttentionChoice(577, 128, 'infer', a)).toEqual({ path: 'fused', variant: 'flash' });
      for (const [n, d] of [[196, 64], [197, 80], [197, 32], [50, 16], [197, 256]]) expect(defaultAttentionChoice(n, d, 'train', a)).toEqual({ path: 'explicit' });
    }
    expect(attentionChoiceFor(197, 64, 'train')).toEqual({ ...defaultAttentionChoice(197, 64, 'train'), source: 'default' });
    setAttentionChoice(key, 197, 64, 'train', { path: 'fused', variant: 'rows' });
    expect(attentionChoiceFor(197, 64, 'train')).toEqual({ path: 'fused', variant: 'rows', source: 'tuned' });
    // per shape, mode and adapter
    expect(attentionChoiceFor(197, 64, 'infer').source).toBe('default');
    expect(attentionChoiceFor(197, 32, 'train').source).toBe('default');
    expect(attentionChoiceFor(197, 64, 'train', 'another-gpu').source).toBe('default');
    expect(describeAttentionChoice(attentionChoiceFor(197, 64, 'train'))).toBe('fused rows (tuned)');
    setAttentionChoice(key, 197, 64, 'train', undefined);
    expect(attentionChoiceFor(197, 64, 'train').source).toBe('default');
    expect(() => setAttentionChoice(key, 1, 1, 'train', { path: 'fused', variant: 'warp' })).toThrow(/unknown fused variant 'warp' \(known: rows, /);
    expect(() => setAttentionChoice(key, 1, 1, 'train', { path: 'both' as never })).toThrow(/path must be 'explicit' or 'fused', got 'both'/);
  });

  it("the model's forward takes the chosen path for its shape and mode (kernels seen through the pass hook)", async () => {
    const model = new VisionTransformer(TINY, { init: 'random', seed: 3 }).eval();
    const x = randomArray(2 * 3 * 16 * 16, 5, -2, 2);
    // The pass labels one forward records (in a scope); `grad`: a graph is recorded, as in training.
    const labels = async (grad: boolean, opts: ForwardOptions = {}): Promise<string[]> => {
      const seen: string[] = [];
      setPassHook((_d, label) => seen.push(label));
      try {
        await scope(async () => {
          const run = () => model.forward(Tensor.from(x, [2, 3, 16, 16]), opts);
          const r = grad ? run() : noGrad(run);
          if (opts.returnAttention) expect(r.attentions).toHaveLength(1);
          await r.logits.read();
        });
      } finally {
        setPassHook(null);
      }
      return seen;
    };
    const fused = (ls: string[]) => ls.some((l) => /attention/.test(l) && !/pad/.test(l));
    const softmax = (ls: string[]) => ls.some((l) => /softmax/.test(l));
    const byDefault = await labels(false);
    expect(softmax(byDefault) && !fused(byDefault)).toBe(true);
    setAttentionChoice(gpu().adapterKey, 17, 16, 'infer', { path: 'fused', variant: 'rows' });
    expect(model.attentionChoice('infer')).toEqual({ path: 'fused', variant: 'rows', source: 'tuned' });
    const tuned = await labels(false);
    expect(fused(tuned) && !softmax(tuned)).toBe(true);
    // the choice was for inference: a forward that records a graph (a backward will run) keeps the table's path
    const training = await labels(true);
    expect(softmax(training) && !fused(training)).toBe(true);
    // asking for the probabilities takes the explicit path whatever was tuned (only it has them)
    const withProbs = await labels(false, { returnAttention: true });
    expect(softmax(withProbs) && !fused(withProbs)).toBe(true);
    // a path named by the caller wins over the tuned choice
    const named = await labels(false, { attention: 'explicit' });
    expect(softmax(named) && !fused(named)).toBe(true);
  });

  it('autotune checks each candidate, times the correct ones, keeps the fastest and caches it in a file', async () => {
    const fusedDefault = defaultAttentionVariant();
    // 'flash@9x9' is a known family with a blocking out of range: it cannot run, and must be reported, not chosen.
    const r = await autotuneAttention({ batch: 2, heads: 2, seq: 13, dim: 16, mode: 'train', candidates: ['explicit', fusedDefault, 'flash@9x9'], runs: 1, force: true });
    expect(r.fromCache).toBe(false);
    expect(Object.keys(r.timings).sort()).toEqual(['explicit', fusedDefault].sort());
    for (const t of Object.values(r.timings)) expect(t).toBeGreaterThan(0);
    expect(Object.keys(r.failed)).toEqual(['flash@9x9']);
    expect(r.failed['flash@9x9']).toMatch(/flash/);
    const fastest = Object.entries(r.timings).sort((a, b) => a[1] - b[1])[0][0];
    // the fastest, unless it is a fused variant within the 5 % margin of the explicit path
    const expected = fastest === 'explicit' || r.timings[fastest] > 0.95 * r.timings.explicit ? { path: 'explicit' } : { path: 'fused', variant: fastest };
    expect(r.choice).toEqual(expected);
    expect(attentionChoiceFor(13, 16, 'train')).toEqual({ ...expected, source: 'tuned' });
    const file = JSON.parse(readFileSync(join(cacheDir, 'celluscan', 'attention-autotune.json'), 'utf8'));
    expect(file.entries[gpu().adapterKey].shapes['N13 D16 train'].choice).toEqual(expected);
    // from the file: in a later process (loadAttentionTuning), and without re-measuring (autotune, no force)
    clearAttentionChoices();
    expect(await loadAttentionTuning()).toBe(1);
    expect(attentionChoiceFor(13, 16, 'train')).toEqual({ ...expected, source: 'tuned' });
    const again = await autotuneAttention({ batch: 2, heads: 2, seq: 13, dim: 16, mode: 'train' });
    expect(again).toMatchObject({ fromCache: true, choice: expected });
    // the cache answers only the question it measured: another batch, or named candidates, measure again
    const otherBatch = await autotuneAttention({ batch: 3, heads: 2, seq: 13, dim: 16, mode: 'train', runs: 1 });
    expect(otherBatch).toMatchObject({ fromCache: false, batch: 3 });
    const named = await autotuneAttention({ batch: 3, heads: 2, seq: 13, dim: 16, mode: 'train', candidates: ['explicit'], runs: 1 });
    expect(named).toMatchObject({ fromCache: false, choice: { path: 'explicit' } });
    // and a bad candidate is named even where a cached result exists
    await expect(autotuneAttention({ batch: 3, heads: 2, seq: 13, dim: 16, mode: 'train', candidates: ['warp'] })).rejects.toThrow(/unknown fused variant 'warp'/);
  });

  it('a fused variant must beat the explicit path by the margin; without the explicit path the fastest fused one is taken', async () => {
    const v = defaultAttentionVariant();
    // margin 1: a fused variant would have to take no time at all (0.99 was beaten once, by a timed explicit run that
    // a parallel test file slowed 100×: wall clocks on a shared CPU can do that)
    const r = await autotuneAttention({ batch: 1, heads: 2, seq: 7, dim: 8, mode: 'infer', candidates: ['explicit', v], runs: 1, force: true, margin: 1 });
    expect(r.choice).toEqual({ path: 'explicit' });
    const f = await autotuneAttention({ batch: 1, heads: 2, seq: 7, dim: 8, mode: 'infer', candidates: [v], runs: 1, force: true });
    expect(f.choice).toEqual({ path: 'fused', variant: v });
  });

  it('names bad shapes, modes and candidates, and a run where nothing passes', async () => {
    await expect(autotuneAttention({ batch: 0, heads: 2, seq: 7, dim: 8, mode: 'train' })).rejects.toThrow(/batch must be an integer >= 1, got 0/);
    await expect(autotuneAttention({ batch: 1, heads: 2, seq: 7, dim: 8, mode: 'fast' as never })).rejects.toThrow(/mode must be 'train' or 'infer', got 'fast'/);
    await expect(autotuneAttention({ batch: 1, heads: 2, seq: 7, dim: 8, mode: 'train', candidates: ['warp'] })).rejects.toThrow(/unknown fused variant 'warp'/);
    await expect(autotuneAttention({ batch: 1, heads: 2, seq: 7, dim: 8, mode: 'train', margin: 1.5 })).rejects.toThrow(/margin must be in \[0, 1\], got 1.5/);
    await expect(autotuneAttention({ batch: 1, heads: 2, seq: 7, dim: 8, mode: 'train', candidates: ['flash@9x9'], force: true })).rejects.toThrow(
      /no candidate ran correctly at N7 D8 train: flash@9x9: /,
    );
  });

  it('loading skips entries of another adapter description and variants this build does not know', async () => {
    const g = gpu();
    mkdirSync(join(cacheDir, 'celluscan'), { recursive: true });
    const file = join(cacheDir, 'celluscan', 'attention-autotune.json');
    const shape = (s: string, choice: object) => ({ shape: s, choice });
    writeFileSync(
      file,
      JSON.stringify({
        version: 1,
        entries: {
          [g.adapterKey]: { description: g.info.description, shapes: { a: shape('N5 D4 infer', { path: 'fused', variant: 'rows' }), b: shape('N5 D4 train', { path: 'fused', variant: 'warp' }), c: shape('junk', { path: 'explicit' }) } },
          other: { description: 'x', shapes: { a: shape('N6 D4 infer', { path: 'fused', variant: 'rows' }) } },
        },
      }),
    );
    clearAttentionChoices();
    expect(await loadAttentionTuning()).toBe(1);
    expect(attentionChoiceFor(5, 4, 'infer')).toEqual({ path: 'fused', variant: 'rows', source: 'tuned' });
    expect(attentionChoiceFor(5, 4, 'train').source).toBe('default');
    // another description for this adapter key (a different driver, say): nothing loads
    writeFileSync(file, JSON.stringify({ version: 1, entries: { [g.adapterKey]: { description: 'another driver', shapes: { a: shape('N5 D4 infer', { path: 'fused' }) } } } }));
    clearAttentionChoices();
    expect(await loadAttentionTuning()).toBe(0);
    // a malformed file is no cache
    writeFileSync(file, '{ not json');
    expect(await loadAttentionTuning()).toBe(0);
  });
});

describe('tune and bench on the command line: contradictions, model files, help texts', () => {
  // (its own cache folder: a command that wrongly went on to measure must not write anyone's tuning cache)
  const cache = mkdtempSync(join(tmpdir(), 'celluscan-tune-cli-'));
  afterAll(() => rmSync(cache, { recursive: true, force: true }));
  const cli = (...args: string[]) => {
    const r = spawnSync(process.execPath, ['bin/celluscan.mjs', ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, XDG_CACHE_HOME: cache } });
    return { status: r.status, stdout: r.stdout, err: r.stderr.split('\n').filter((l) => l && !l.startsWith('Warning:')) };
  };
  /** A command's --help as one line (commander wraps it to the terminal). */
  const help = (...args: string[]) => cli(...args, '--help').stdout.replace(/\s+/g, ' ');

  it('--attention-variants with --only matmul or rows is an error naming both (attention would not be tuned)', () => {
    for (const only of ['matmul', 'rows']) {
      expect(cli('tune', '--only', only, '--attention-variants', 'flash')).toEqual({
        status: 1,
        stdout: '',
        err: [`celluscan: tune: --attention-variants flash contradicts --only ${only} (attention is not tuned): drop one of them`],
      });
    }
  });

  it('--model: a PyTorch checkpoint is told as predict tells it (convert it first), a missing file by name', () => {
    const dir = mkdtempSync(join(tmpdir(), 'celluscan-tune-model-'));
    try {
      const pth = join(dir, 'small.pth');
      writeFileSync(pth, zipSync({ 'archive/data.pkl': new Uint8Array(16) }));
      expect(cli('tune', '--model', pth).err).toEqual([`celluscan: tune: ${pth} is a PyTorch (zip) checkpoint, not safetensors: convert it first (celluscan convert IN OUT.safetensors)`]);
      const text = join(dir, 'text.safetensors');
      writeFileSync(text, 'hello\n');
      expect(cli('tune', '--model', text).err).toEqual([`celluscan: tune: ${text}: not a safetensors file: 6 bytes is too short for the 8-byte header length`]);
      expect(cli('tune', '--model', join(dir, 'none.pth')).err).toEqual([`celluscan: tune: cannot read ${join(dir, 'none.pth')}: no such file`]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("'fmnist' is described as the model it runs: the patch-7 model of fashion-mnist-quick / -p7, not the fashion-mnist preset's", () => {
    const { config } = benchModel('fmnist');
    expect(config).toEqual(TRAIN_PRESETS['fashion-mnist-quick'].options.config);
    expect(config).toEqual(TRAIN_PRESETS['fashion-mnist-p7'].options.config);
    expect(config).not.toEqual(TRAIN_PRESETS['fashion-mnist'].options.config);
    const tokens = (config.image_size / config.patch_size) ** 2 + 1;
    const p4 = TRAIN_PRESETS['fashion-mnist'].options.config!;
    for (const h of [help('bench', 'profile'), help('tune')]) {
      expect(h).not.toMatch(/fashion-mnist preset's model/);
      expect(h).toMatch(new RegExp(`'fmnist' \\(the patch-${config.patch_size} (Fashion-MNIST )?model of (the )?fashion-mnist-quick`));
      expect(h).toContain(`${tokens} tokens`);
    }
    expect(help('tune')).toContain(`fashion-mnist: the patch-${p4.patch_size} model, ${(p4.image_size / p4.patch_size) ** 2 + 1} tokens`);
  });

  it('bench matmul --help says what it reports: wall clock with read-back, and GPU time from timestamp queries', () => {
    const h = help('bench', 'matmul');
    expect(h).not.toMatch(/readback included/);
    expect(h).toMatch(/best wall-clock run after a warm-up \(dispatch \+ read-back of C\)/);
    expect(h).toMatch(/timestamp queries, the median GPU time \(gpu_ms, gpu_gflops\)/);
    expect(h).toMatch(/several --variant: each call timed without read-back \(GPU time, else the best wall clock\)/);
  });
});
