// Parity with torchvision: tools/torch_parity.py builds torchvision VisionTransformers with random (seeded) weights,
// torch.save()s their state_dicts, writes test images at exactly image_size (no resampling ambiguity) and dumps
// torchvision's eval-mode logits; here `celluscan convert` and `celluscan predict --json` run as subprocesses
// (as a user would) and their logits are compared on both attention paths. Round trip: a model our code builds
// and saves (stateDict() → safetensors) loads into torchvision with load_state_dict(strict=True) and gives our logits.
//
// Needs python3 with torch + torchvision (Debian: python3-torch python3-torchvision; `npm test`'s set-up installs
// them). Without them these tests FAIL (never skip), saying what to install.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { celluscanMetadata, parseSafetensors, serializeSafetensors } from '../src/vit/safetensors.js';
import { decodeImage } from '../src/vit/decode.js';
import { prepareImage } from '../src/vit/image.js';
import { VisionTransformer } from '../src/vit/model.js';
import type { VitConfig } from '../src/vit/config.js';
import { useGpu } from './gpu.js';
import { requireTorchPython } from '../tools/torchPython.js';

useGpu();

interface Fixture {
  config: Omit<VitConfig, 'dropout' | 'attention_dropout'>;
  state_dict: string;
  images: string[];
  mean: number[];
  std: number[];
  logits: number[][];
}

const TOOL = 'tools/torch_parity.py';
const tmp = mkdtempSync(join(tmpdir(), 'celluscan-parity-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let python = '';

/** The first python with torch + torchvision: $CELLUSCAN_PYTHON, python3, /usr/bin/python3 (Debian's, where apt puts torch). */
function findPython(): string {
  return requireTorchPython();
}

function run(cmd: string, args: string[], timeoutMs: number): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 256 << 20, env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' } });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}${r.signal ? `, ${r.signal}` : ''}`}):\n${r.stderr}`);
  }
  return r.stdout;
}

const celluscan = (args: string[], timeoutMs = 300_000) => run(process.execPath, ['bin/celluscan.mjs', ...args], timeoutMs);

function maxAbsDiff(a: number[][], b: number[][]): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  a.forEach((row, i) => {
    expect(row.length).toBe(b[i].length);
    row.forEach((v, j) => (m = Math.max(m, Math.abs(v - b[i][j]))));
  });
  return m;
}

function makeFixtures(configs: string[], timeoutMs: number): Record<string, Fixture> {
  const out = join(tmp, configs.join('_'));
  const index = JSON.parse(run(python, [TOOL, 'make', '--out', out, ...configs.flatMap((c) => ['--config', c])], timeoutMs).trim().split('\n').pop()!);
  return Object.fromEntries(configs.map((c) => [c, JSON.parse(readFileSync(index[c], 'utf8')) as Fixture]));
}

/** convert → predict --json on both attention paths; returns the max abs logit difference per path. */
function checkConfig(name: string, fx: Fixture, numHeads: number | undefined, paths: ('fused' | 'explicit')[], timeoutMs: number, imagesFor?: (path: string) => number[]) {
  const st = join(tmp, `${name}.safetensors`);
  const conv = JSON.parse(
    celluscan(['convert', fx.state_dict, st, ...(numHeads ? ['--num-heads', String(numHeads)] : []), '--mean', fx.mean.join(','), '--std', fx.std.join(','), '--json'], timeoutMs),
  );
  expect(conv.config).toMatchObject(fx.config);
  const diffs: Record<string, number> = {};
  for (const path of paths) {
    const idx = imagesFor ? imagesFor(path) : fx.images.map((_, i) => i);
    const images = idx.map((i) => fx.images[i]);
    const out = JSON.parse(celluscan(['predict', '--weights', st, '--image', ...images, '--attention', path, '--json', '--top', '3'], timeoutMs));
    const res = Array.isArray(out) ? out : [out]; // one image → one object
    expect(res.map((r: { image: string }) => r.image)).toEqual(images);
    diffs[path] = maxAbsDiff(res.map((r: { logits: number[] }) => r.logits), idx.map((i) => fx.logits[i]));
    // probs and top-K are consistent with the logits
    for (const r of res) {
      expect(r.top.length).toBe(3);
      expect(r.top[0].index).toBe(r.logits.indexOf(Math.max(...r.logits)));
      expect(r.probs.reduce((a: number, b: number) => a + b, 0)).toBeCloseTo(1, 9);
    }
  }
  return { conv, diffs };
}

describe('torchvision parity (small configs)', () => {
  let fx: Record<string, Fixture>;
  beforeAll(() => {
    python = findPython();
    fx = makeFixtures(['small48', 'fmnist28'], 240_000);
  }, 300_000);

  // f32 end to end on both sides over 2 layers; summation orders differ (our kernels vs MKL/OpenBLAS).
  const TOL = 1e-4;

  it('small48 (image 48, patch 16, 2 layers, 3 heads, hidden 48, mlp 100, 5 classes): convert + predict, both attention paths ≤ 1e-4', () => {
    const { diffs } = checkConfig('small48', fx.small48, 3, ['fused', 'explicit'], 240_000);
    console.log(`parity small48: max |Δlogit| fused ${diffs.fused.toExponential(2)}, explicit ${diffs.explicit.toExponential(2)}`);
    expect(diffs.fused).toBeLessThanOrEqual(TOL);
    expect(diffs.explicit).toBeLessThanOrEqual(TOL);
  }, 300_000);

  it('fmnist28 (image 28, patch 7, 2 layers, 4 heads, hidden 64, mlp 128, 10 classes): convert + predict, both attention paths ≤ 1e-4', () => {
    const { diffs } = checkConfig('fmnist28', fx.fmnist28, 4, ['fused', 'explicit'], 240_000);
    console.log(`parity fmnist28: max |Δlogit| fused ${diffs.fused.toExponential(2)}, explicit ${diffs.explicit.toExponential(2)}`);
    expect(diffs.fused).toBeLessThanOrEqual(TOL);
    expect(diffs.explicit).toBeLessThanOrEqual(TOL);
  }, 300_000);

  it('attention --probs: every layer\'s attention probabilities equal torch.nn.MultiheadAttention\'s (need_weights) within 1e-5', () => {
    const f = fx.small48;
    const st = join(tmp, 'small48-attn.safetensors');
    celluscan(['convert', f.state_dict, st, '--num-heads', '3', '--mean', f.mean.join(','), '--std', f.std.join(',')], 240_000);
    const out = join(tmp, 'attn-probs');
    const res = JSON.parse(celluscan(['attention', '--weights', st, '--image', f.images[1], '--out', out, '--probs', '--json'], 240_000));
    expect(res.files).toContain(join(out, 'attention_probs.safetensors'));
    const file = parseSafetensors(new Uint8Array(readFileSync(join(out, 'attention_probs.safetensors'))));
    const torchProbs = JSON.parse(run(python, [TOOL, 'attention', '--weights', st, '--image', f.images[1]], 240_000)).probs as number[][][][];
    const [L, H, N] = [f.config.num_layers, f.config.num_heads, (f.config.image_size / f.config.patch_size) ** 2 + 1];
    expect(torchProbs.length).toBe(L);
    let worst = 0;
    for (let l = 0; l < L; l++) {
      const t = file.tensors.get(`layer_${String(l).padStart(2, '0')}`)!;
      expect(t.shape).toEqual([H, N, N]);
      for (let h = 0; h < H; h++) {
        for (let i = 0; i < N; i++) {
          for (let j = 0; j < N; j++) worst = Math.max(worst, Math.abs(t.data[(h * N + i) * N + j] - torchProbs[l][h][i][j]));
          // the JSON's class-token maps are row 0 without its own column
          if (i === 0) expect(res.cls_attention[l][h]).toEqual(Array.from(t.data.subarray(h * N * N + 1, h * N * N + N)));
        }
      }
    }
    console.log(`parity attention probabilities (small48, 2 layers × 3 heads × 10²): max |Δp| ${worst.toExponential(2)}`);
    // Probabilities in [0, 1] from f32 scores over 16-wide heads after at most one layer: the two sides' summation
    // orders differ by ~1e-7 relative in the scores; 1e-5 absolute is ~100× that and far below a wrong scale, mask or
    // head order (O(0.1)).
    expect(worst).toBeLessThanOrEqual(1e-5);
  }, 300_000);

  it('convert without --num-heads on hidden 48 fails with one line naming the fix, and writes nothing', () => {
    const out = join(tmp, 'nope.safetensors');
    const r = spawnSync(process.execPath, ['bin/celluscan.mjs', 'convert', fx.small48.state_dict, out], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^celluscan: .*--num-heads/m);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(() => readFileSync(out)).toThrow();
  });

  it('round trip: a model our code saves (stateDict → safetensors) loads into torchvision strictly and gives our logits', async () => {
    const f = fx.small48;
    const config: VitConfig = { ...f.config, dropout: 0, attention_dropout: 0 };
    const model = new VisionTransformer(config, { init: 'random', seed: 77 }).eval();
    try {
      const S = config.image_size;
      const prepared = f.images.map((p) => prepareImage(decodeImage(new Uint8Array(readFileSync(p)), p), { imageSize: S, mean: f.mean, std: f.std }));
      const input = new Float32Array(prepared.length * 3 * S * S);
      prepared.forEach((im, i) => input.set(im.input, i * 3 * S * S));
      const ours = await model.predictLogits(input, prepared.length);
      const C = config.num_classes;
      const oursRows = prepared.map((_, i) => Array.from(ours.subarray(i * C, (i + 1) * C)));
      const file = join(tmp, 'ours.safetensors');
      writeFileSync(file, serializeSafetensors(await model.stateDict(), celluscanMetadata({ config, mean: f.mean, std: f.std })));
      const torchOut = JSON.parse(run(python, [TOOL, 'logits', '--weights', file, '--images', ...f.images], 240_000));
      const d = maxAbsDiff(oursRows, torchOut.logits);
      console.log(`parity round trip (small48, weights from our init): max |Δlogit| ${d.toExponential(2)}`);
      expect(d).toBeLessThanOrEqual(1e-4);
    } finally {
      model.dispose();
    }
  }, 300_000);
});

describe('torchvision parity (vit_b_16, 14 classes)', () => {
  // 330 MB state dict; a vit_b_16 forward is ~10–40 s on lavapipe with 2 cores (more when the cores are shared), so
  // one image per attention path: fused on the RGB noise image, explicit on the gray one. ≤ 1e-3 (f32 over 12
  // layers of width 768).
  it('vit_b_16: torch.save → convert → predict (fused and explicit) ≤ 1e-3', () => {
    python ||= findPython();
    const t0 = performance.now();
    const fx = makeFixtures(['vit_b_16'], 400_000).vit_b_16;
    const t1 = performance.now();
    const { conv, diffs } = checkConfig('vit_b_16', fx, undefined, ['fused', 'explicit'], 400_000, (p) => (p === 'fused' ? [0] : [2]));
    const t2 = performance.now();
    expect(conv.config.num_heads).toBe(12);
    expect(conv.notes.join(' ')).toMatch(/num_heads/);
    console.log(
      `parity vit_b_16: max |Δlogit| fused ${diffs.fused.toExponential(2)}, explicit ${diffs.explicit.toExponential(2)}; ` +
        `torch fixtures ${((t1 - t0) / 1000).toFixed(1)} s, convert + 2 predicts (1 image each) ${((t2 - t1) / 1000).toFixed(1)} s`,
    );
    expect(diffs.fused).toBeLessThanOrEqual(1e-3);
    expect(diffs.explicit).toBeLessThanOrEqual(1e-3);
    rmSync(fx.state_dict, { force: true });
  }, 600_000);
});
