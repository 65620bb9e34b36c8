// VisionTransformer: torchvision's parameter names and shapes, fused vs explicit attention, head ablation,
// strict state-dict loading; image decoding and preprocessing; attention rollout. (Parity with torchvision itself:
// test/parity.test.ts.)
import { execFileSync, spawnSync } from 'node:child_process';
import { deflateSync } from 'node:zlib';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jpeg from 'jpeg-js';
import pngjs from 'pngjs';
import { afterAll, describe, expect, it } from 'vitest';
import * as ops from '../src/autograd/ops.js';
import { noGrad, Tensor } from '../src/autograd/tensor.js';
import { memoryStats, peakBytesOf, scope } from '../src/kernels/memory.js';
import { randomArray } from '../src/kernels/ref/math.js';
import { expectedShapes, vitPreset, type VitConfig } from '../src/vit/config.js';
import { decodeImage } from '../src/vit/decode.js';
import { ImageError, prepareImage, type RgbImage } from '../src/vit/image.js';
import { presetLabels, parseLabelsText, WBC14 } from '../src/vit/labels.js';
import { celluscanMetadata, serializeSafetensors } from '../src/vit/safetensors.js';
import { VisionTransformer } from '../src/vit/model.js';
import { ablationChanges, attentionMaps, heatColor, parseAblateHeads } from '../src/vit/attentionMaps.js';
import { softmax, topK } from '../src/vit/predict.js';
import { expectClose, useGpu } from './gpu.js';

useGpu();

const cfg = (o: Partial<VitConfig> & Pick<VitConfig, 'image_size' | 'patch_size' | 'num_layers' | 'num_heads' | 'hidden_dim' | 'mlp_dim' | 'num_classes'>): VitConfig => ({
  dropout: 0,
  attention_dropout: 0,
  ...o,
});
// Sizes that are multiples of nothing in particular.
const SMALL48 = cfg({ image_size: 48, patch_size: 16, num_layers: 2, num_heads: 3, hidden_dim: 48, mlp_dim: 100, num_classes: 5 });
const FMNIST28 = cfg({ image_size: 28, patch_size: 7, num_layers: 2, num_heads: 4, hidden_dim: 64, mlp_dim: 128, num_classes: 10 });
const ODD = cfg({ image_size: 30, patch_size: 10, num_layers: 3, num_heads: 5, hidden_dim: 35, mlp_dim: 41, num_classes: 7 });

const tmp = mkdtempSync(join(tmpdir(), 'celluscan-vit-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function logits(m: VisionTransformer, x: Float32Array, B: number, opts: Parameters<VisionTransformer['predictLogits']>[2] = {}) {
  return m.predictLogits(x, B, opts);
}

describe('VisionTransformer structure', () => {
  it.each([
    ['small48', SMALL48],
    ['fmnist28', FMNIST28],
    ['odd', ODD],
    ['vit_ti_16', vitPreset('vit_ti_16', { num_classes: 14 })],
  ])('%s: parameter names, order and shapes are torchvision state_dict keys (expectedShapes)', (_, c) => {
    const m = new VisionTransformer(c);
    try {
      const got = [...m.parameterShapes()];
      expect(got).toEqual([...expectedShapes(c)]);
      expect(m.numParameters()).toBe([...expectedShapes(c).values()].reduce((n, s) => n + s.reduce((a, b) => a * b, 1), 0));
    } finally {
      m.dispose();
    }
  });

  it('from-scratch switches: mean pooling drops class_token, posEmbedding false drops encoder.pos_embedding', async () => {
    const m = new VisionTransformer(SMALL48, { pool: 'mean', posEmbedding: false, init: 'random' });
    try {
      const names = [...m.parameterShapes().keys()];
      expect(names).not.toContain('class_token');
      expect(names).not.toContain('encoder.pos_embedding');
      expect(names.length).toBe(expectedShapes(SMALL48).size - 2);
      const out = await logits(m.eval(), randomArray(2 * 3 * 48 * 48, 5), 2);
      expect(out.length).toBe(10);
      expect(out.every(Number.isFinite)).toBe(true);
    } finally {
      m.dispose();
    }
  });

  it('torchvision init: zero head gives zero logits; seeded init is deterministic', async () => {
    const a = new VisionTransformer(SMALL48, { seed: 9 });
    const b = new VisionTransformer(SMALL48, { seed: 9 });
    try {
      const x = randomArray(3 * 48 * 48, 2);
      expect(Array.from(await logits(a.eval(), x, 1))).toEqual([0, 0, 0, 0, 0]);
      const sa = await a.stateDict();
      const sb = await b.stateDict();
      for (const [k, v] of sa) expect(Array.from(sb.get(k)!.data), k).toEqual(Array.from(v.data));
      // conv_proj truncated normal std sqrt(1/768): cut at 2 std
      const w = sa.get('conv_proj.weight')!.data;
      expect(Math.max(...Array.from(w, Math.abs))).toBeLessThanOrEqual((2 / Math.sqrt(768)) * 1.0001);
    } finally {
      a.dispose();
      b.dispose();
    }
  });

  it('rejects a wrong input shape and out-of-range ablations with clear errors', () => {
    const m = new VisionTransformer(SMALL48);
    try {
      noGrad(() => {
        const x = Tensor.from(new Float32Array(3 * 32 * 32), [1, 3, 32, 32]);
        expect(() => m.forward(x)).toThrow(/input \[1, 3, 32, 32\] must be \[B, 3, 48, 48\]/);
        const y = Tensor.from(new Float32Array(3 * 48 * 48), [1, 3, 48, 48]);
        expect(() => m.forward(y, { ablate: [[2, 0]] })).toThrow(/layer 2, head 0.*layers 0..1 and heads 0..2/);
        x.dispose();
        y.dispose();
      });
    } finally {
      m.dispose();
    }
  });
});

describe('VisionTransformer forward', () => {
  it.each([
    ['small48', 3, SMALL48],
    ['fmnist28', 2, FMNIST28],
    ['odd', 1, ODD],
  ])('%s: fused and explicit attention paths agree (batch %i)', async (_, B, c) => {
    const m = new VisionTransformer(c, { init: 'random', seed: 4 }).eval();
    try {
      const S = c.image_size;
      const x = randomArray(B * 3 * S * S, 11, -2, 2);
      const f = await logits(m, x, B, { attention: 'fused' });
      const e = await logits(m, x, B, { attention: 'explicit' });
      expect(f.length).toBe(B * c.num_classes);
      // Same math in f32, different summation order (online vs two-pass softmax): logits O(1).
      expectClose(f, e, 2e-5, 2e-5, 'fused vs explicit');
      // Each image of a batch is independent of the others.
      const one = await logits(m, x.subarray(0, 3 * S * S), 1, { attention: 'fused' });
      expectClose(one, f.subarray(0, c.num_classes), 2e-5, 2e-5, 'batch of 1 vs batch row 0');
    } finally {
      m.dispose();
    }
  });

  it('head ablation changes the output only when heads are masked, the same on both paths', async () => {
    const m = new VisionTransformer(SMALL48, { init: 'random', seed: 5 }).eval();
    try {
      const x = randomArray(2 * 3 * 48 * 48, 12, -2, 2);
      const base = await logits(m, x, 2, { attention: 'fused' });
      expect(Array.from(await logits(m, x, 2, { attention: 'fused', ablate: [] }))).toEqual(Array.from(base));
      expect(Array.from(await logits(m, x, 2, { attention: 'explicit', ablate: [] }))).toEqual(Array.from(await logits(m, x, 2, { attention: 'explicit' })));
      for (const ab of [[[0, 1]], [[1, 2]], [[0, 0], [1, 0], [1, 1]]] as [number, number][][]) {
        const f = await logits(m, x, 2, { attention: 'fused', ablate: ab });
        const e = await logits(m, x, 2, { attention: 'explicit', ablate: ab });
        expectClose(f, e, 2e-5, 2e-5, `ablate ${JSON.stringify(ab)}: fused vs explicit`);
        const diff = Math.max(...Array.from(f, (v, i) => Math.abs(v - base[i])));
        expect(diff, `ablate ${JSON.stringify(ab)} changes the logits`).toBeGreaterThan(1e-3);
      }
    } finally {
      m.dispose();
    }
  });

  it('explicit path returns every layer\'s attention probabilities [B, H, N, N], rows summing to 1', async () => {
    const m = new VisionTransformer(FMNIST28, { init: 'random', seed: 6 }).eval();
    try {
      const B = 2;
      const N = 17;
      const probs = await noGrad(async () => {
        const r = m.forward(Tensor.from(randomArray(B * 3 * 28 * 28, 3), [B, 3, 28, 28]), { attention: 'explicit', returnAttention: true });
        expect(r.attentions!.length).toBe(2);
        const out = [];
        for (const a of r.attentions!) {
          expect(a.shape).toEqual([B, 4, N, N]);
          out.push(await a.read());
        }
        return out;
      });
      for (const p of probs) {
        for (let r = 0; r < B * 4 * N; r++) {
          let s = 0;
          for (let j = 0; j < N; j++) s += p[r * N + j];
          expect(Math.abs(s - 1)).toBeLessThan(1e-5);
        }
      }
    } finally {
      m.dispose();
    }
  });

  it('inference frees what it allocates (live GPU arrays flat over repeated predictions)', async () => {
    const m = new VisionTransformer(SMALL48, { init: 'random' }).eval();
    try {
      const x = randomArray(3 * 48 * 48, 1);
      await logits(m, x, 1, { attention: 'fused', ablate: [[0, 1]] });
      await logits(m, x, 1, { attention: 'explicit', ablate: [[0, 1]] });
      const before = memoryStats().liveArrays;
      for (let i = 0; i < 3; i++) {
        await logits(m, x, 1, { attention: 'fused', ablate: [[0, 1]] });
        await logits(m, x, 1, { attention: 'explicit', ablate: [[0, 1]] });
      }
      expect(memoryStats().liveArrays).toBe(before);
    } finally {
      m.dispose();
    }
  });
});

describe('VisionTransformer memory', () => {
  it("inference holds one block's intermediates at a time, not every layer's; a forward with a graph keeps them all", async () => {
    // Same model but for its depth: without a graph the peak above the weights must not grow with the layers (it did,
    // ~linearly, when every block's intermediates stayed alive to the end of the caller's scope); with one it does.
    const peak = async (layers: number, grad: boolean) => {
      const m = new VisionTransformer({ ...SMALL48, num_layers: layers }, { init: 'random' }).eval();
      try {
        const x = randomArray(2 * 3 * 48 * 48, 1);
        const run = () => m.forward(Tensor.from(x, [2, 3, 48, 48])).logits.read();
        return (await peakBytesOf(() => scope(() => (grad ? run() : noGrad(run))))).peakBytes;
      } finally {
        m.dispose();
      }
    };
    const [one, six] = [await peak(1, false), await peak(6, false)];
    expect(six).toBeLessThan(1.25 * one);
    // With a graph each block keeps what its backward reads (~50 kB here) over a fixed part (~130 kB: the patch
    // embedding, the head, the input): six blocks ~2.4× one block's peak.
    const [oneG, sixG] = [await peak(1, true), await peak(6, true)];
    expect(sixG).toBeGreaterThan(2 * oneG);
  });

  it('inference with attention maps and ablation gives the same logits and maps as with the graph kept', async () => {
    const m = new VisionTransformer(SMALL48, { init: 'random', seed: 3 }).eval();
    try {
      const x = randomArray(2 * 3 * 48 * 48, 2);
      const run = () =>
        scope(async () => {
          const r = m.forward(Tensor.from(x, [2, 3, 48, 48]), { attention: 'explicit', returnAttention: true, ablate: [[1, 2]] });
          return [await r.logits.read(), ...(await Promise.all(r.attentions!.map((a) => a.read())))];
        });
      const free = await noGrad(run);
      const kept = await run();
      expect(free.length).toBe(1 + SMALL48.num_layers);
      // the same kernels on the same inputs in the same order: bit for bit
      free.forEach((f, i) => expect(Array.from(f)).toEqual(Array.from(kept[i])));
    } finally {
      m.dispose();
    }
  });
});

describe('VisionTransformer training', () => {
  it('backward reaches every parameter; fused and explicit paths give the same gradients', async () => {
    const grads: Record<string, Map<string, Float32Array>> = {};
    for (const path of ['fused', 'explicit'] as const) {
      const m = new VisionTransformer(FMNIST28, { init: 'random', seed: 8 }).train();
      try {
        const x = Tensor.from(randomArray(2 * 3 * 28 * 28, 9), [2, 3, 28, 28]);
        const { logits: l } = m.forward(x, { attention: path });
        const loss = ops.mean(ops.square(l));
        loss.backward();
        grads[path] = new Map();
        for (const [name, p] of m.namedParameters()) {
          expect(p.grad, name).not.toBeNull();
          const g = await p.grad!.read();
          expect(g.every(Number.isFinite), name).toBe(true);
          grads[path].set(name, g);
        }
        x.dispose();
      } finally {
        m.dispose();
      }
    }
    for (const [name, g] of grads.fused) expectClose(g, grads.explicit.get(name)!, 1e-5, 1e-3, `grad ${name}: fused vs explicit`);
  });

  it('dropout is active in training and off in eval', async () => {
    const c = { ...SMALL48, dropout: 0.2, attention_dropout: 0.1 };
    const m = new VisionTransformer(c, { init: 'random', seed: 3 });
    try {
      const x = randomArray(3 * 48 * 48, 4);
      const e1 = await m.eval().predictLogits(x, 1);
      expect(Array.from(await m.predictLogits(x, 1))).toEqual(Array.from(e1));
      const t1 = await m.train().predictLogits(x, 1);
      const t2 = await m.predictLogits(x, 1);
      expect(Array.from(t1)).not.toEqual(Array.from(e1));
      expect(Array.from(t1)).not.toEqual(Array.from(t2)); // fresh masks each call
    } finally {
      m.dispose();
    }
  });
});

describe('state dict', () => {
  it('stateDict() → loadStateDict() reproduces the model exactly', async () => {
    const a = new VisionTransformer(ODD, { init: 'random', seed: 1 }).eval();
    const b = new VisionTransformer(ODD, { init: 'random', seed: 2 }).eval();
    try {
      const x = randomArray(3 * 30 * 30, 8);
      const la = await logits(a, x, 1);
      expect(Array.from(await logits(b, x, 1))).not.toEqual(Array.from(la));
      b.loadStateDict(await a.stateDict());
      expect(Array.from(await logits(b, x, 1))).toEqual(Array.from(la));
    } finally {
      a.dispose();
      b.dispose();
    }
  });

  it('loadStateDict is strict: one error names every missing, unexpected and mis-shaped tensor, and loads nothing', async () => {
    const m = new VisionTransformer(SMALL48, { init: 'random', seed: 1 });
    try {
      const sd = await m.stateDict();
      const before = Array.from(sd.get('heads.head.bias')!.data);
      const bad = new Map(sd);
      bad.delete('encoder.ln.bias');
      bad.delete('class_token');
      bad.set('encoder.layers.encoder_layer_2.ln_1.weight', { shape: [48], data: new Float32Array(48) });
      bad.set('heads.head.weight', { shape: [48, 5], data: new Float32Array(240) });
      bad.set('heads.head.bias', { shape: [5], data: new Float32Array(5).fill(7) });
      let msg = '';
      try {
        m.loadStateDict(bad);
      } catch (e) {
        msg = (e as Error).message;
      }
      expect(msg).toMatch(/missing 2: class_token, encoder\.ln\.bias/);
      expect(msg).toMatch(/unexpected 1: encoder\.layers\.encoder_layer_2\.ln_1\.weight/);
      expect(msg).toMatch(/wrong shape 1: heads\.head\.weight is \[48, 5\], expected \[5, 48\]/);
      expect(Array.from((await m.stateDict()).get('heads.head.bias')!.data)).toEqual(before);
    } finally {
      m.dispose();
    }
  });
});

// ---- images --------------------------------------------------------------------------------------

function pngBytes(width: number, height: number, rgba: Uint8Array, colorType: 0 | 2 | 4 | 6 = 6): Uint8Array {
  const png = new pngjs.PNG({ width, height, colorType, inputColorType: 6 } as never);
  png.data = Buffer.from(rgba);
  return new Uint8Array(pngjs.PNG.sync.write(png, { colorType, inputColorType: 6 } as never));
}

function randomRgba(n: number, seed: number): Uint8Array {
  const r = randomArray(n * 4, seed, 0, 256);
  return Uint8Array.from(r, (v) => Math.floor(v));
}

describe('image preprocessing', () => {
  const MEAN = [0.5, 0.4, 0.3];
  const STD = [0.2, 0.25, 0.3];

  it('an image already image_size × image_size is used exactly as is (no resampling)', () => {
    const rgba = randomRgba(20 * 20, 1);
    const img = decodeImage(pngBytes(20, 20, rgba), 'x.png');
    const p = prepareImage(img, { imageSize: 20, mean: MEAN, std: STD });
    expect(p.box).toEqual({ x: 0, y: 0, w: 20, h: 20 });
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < 400; i++) {
        expect(p.input[c * 400 + i]).toBe(Math.fround((rgba[i * 4 + c] / 255 - MEAN[c]) / STD[c]));
      }
    }
  });

  it('keeps the aspect ratio (long side to image_size) and pads centred with zeros', () => {
    // 40 × 20 uniform colour → 20 × 10, rows 5..14 filled, rows 0..4 and 15..19 black
    const rgba = new Uint8Array(40 * 20 * 4);
    for (let i = 0; i < 800; i++) rgba.set([200, 100, 50, 255], i * 4);
    const p = prepareImage(decodeImage(pngBytes(40, 20, rgba)), { imageSize: 20, mean: MEAN, std: STD });
    expect(p.box).toEqual({ x: 0, y: 5, w: 20, h: 10 });
    for (let y = 0; y < 20; y++) {
      for (let x = 0; x < 20; x++) {
        const inside = y >= 5 && y < 15;
        const px = Array.from(p.rgb.subarray((y * 20 + x) * 3, (y * 20 + x) * 3 + 3));
        if (inside) expectClose(px, [200, 100, 50], 1e-3, 0, `pixel ${x},${y}`);
        else expect(px).toEqual([0, 0, 0]);
      }
    }
    // a tall image pads left/right; odd leftovers go to the far side
    const tall = prepareImage({ width: 3, height: 9, data: new Uint8Array(81).fill(255) }, { imageSize: 6 });
    expect(tall.box).toEqual({ x: 2, y: 0, w: 2, h: 6 });
    // padding is pixel 0 before normalisation: (0 - mean)/std
    expect(p.input[0]).toBeCloseTo(-MEAN[0] / STD[0], 6);
  });

  it('shrinking is antialiased (an area average) and enlarging preserves a constant image', () => {
    // 2×2 checkerboard of 0/255 blocks shrunk to 1×1: the mean
    const img: RgbImage = { width: 4, height: 4, data: new Uint8Array(48) };
    for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) if ((x + y) % 2 === 0) img.data.fill(255, (y * 4 + x) * 3, (y * 4 + x) * 3 + 3);
    expectClose(Array.from(prepareImage(img, { imageSize: 1 }).rgb), [127.5, 127.5, 127.5], 1e-3, 0, 'shrunk checkerboard');
    const up = prepareImage({ width: 3, height: 3, data: new Uint8Array(27).fill(77) }, { imageSize: 10 });
    expectClose(up.rgb, new Float32Array(300).fill(77), 1e-3, 0, 'enlarged constant image');
  });

  it('gray PNGs are replicated to RGB and alpha is dropped', () => {
    const rgba = randomRgba(6 * 5, 3);
    // opaque: pngjs composites over white when it writes a format without alpha
    for (let i = 0; i < 30; i++) rgba.set([rgba[i * 4], rgba[i * 4], rgba[i * 4], 255], i * 4);
    const gray = decodeImage(pngBytes(6, 5, rgba, 0), 'g.png');
    expect([gray.width, gray.height]).toEqual([6, 5]);
    for (let i = 0; i < 30; i++) expect(Array.from(gray.data.subarray(i * 3, i * 3 + 3))).toEqual([rgba[i * 4], rgba[i * 4], rgba[i * 4]]);
    const withAlpha = randomRgba(7 * 3, 4);
    for (let i = 0; i < 21; i++) withAlpha[i * 4 + 3] = i % 2 ? 0 : 128;
    const a = decodeImage(pngBytes(7, 3, withAlpha, 6), 'a.png');
    for (let i = 0; i < 21; i++) expect(Array.from(a.data.subarray(i * 3, i * 3 + 3))).toEqual(Array.from(withAlpha.subarray(i * 4, i * 4 + 3)));
  });

  it('decodes JPEG (colour and gray) to RGB', () => {
    const rgba = new Uint8Array(16 * 8 * 4);
    for (let i = 0; i < 128; i++) rgba.set([180, 90, 30, 255], i * 4);
    const j = jpeg.encode({ width: 16, height: 8, data: Buffer.from(rgba) }, 95).data;
    const img = decodeImage(new Uint8Array(j), 'c.jpg');
    expect([img.width, img.height]).toEqual([16, 8]);
    expectClose(Array.from(img.data.subarray(0, 3)), [180, 90, 30], 3, 0, 'jpeg colour');
  });

  it('corrupt or non-image files fail with an error naming the file', () => {
    expect(() => decodeImage(new TextEncoder().encode('hello, not an image'), 'notes.txt')).toThrow(/^notes\.txt: not a PNG or JPEG image/);
    expect(() => decodeImage(new Uint8Array(0), 'empty.png')).toThrow(/^empty\.png: not a PNG or JPEG image \(0 bytes\)/);
    const good = pngBytes(8, 8, randomRgba(64, 1));
    expect(() => decodeImage(good.subarray(0, 40), 'cut.png')).toThrow(ImageError);
    expect(() => decodeImage(good.subarray(0, 40), 'cut.png')).toThrow(/^cut\.png: corrupt PNG/);
    expect(() => decodeImage(Uint8Array.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, 1, 2, 3]), 'bad.jpg')).toThrow(/^bad\.jpg: corrupt JPEG/);
  });

  it('CLI: a corrupt image is a one-line error naming the file, exit 1, no stack', () => {
    const bad = join(tmp, 'broken.png');
    writeFileSync(bad, Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]));
    const r = spawnSync(process.execPath, ['bin/celluscan.mjs', 'predict', '--weights', join(tmp, 'none.safetensors'), '--image', bad], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n').filter((l) => !l.startsWith('Warning:'))).toEqual([expect.stringMatching(/^celluscan: .*broken\.png: corrupt PNG/)]);
    expect(r.stdout).toBe('');
  });
});

describe('labels, top-K, attention tools', () => {
  it('wbc14 has 14 named classes with descriptions; label files parse', () => {
    expect(WBC14.length).toBe(14);
    expect(new Set(WBC14.map((l) => l.name)).size).toBe(14);
    expect(WBC14.every((l) => l.description.length > 20)).toBe(true);
    expect(presetLabels('generic', 3)).toEqual(['class_0', 'class_1', 'class_2']);
    expect(() => presetLabels('imagenet')).toThrow(/unknown label preset 'imagenet'/);
    expect(parseLabelsText('# cells\nneutrophil\tmature\n\nlymphocyte - small\n')).toEqual(['neutrophil', 'lymphocyte']);
    expect(parseLabelsText('["a", "b"]')).toEqual(['a', 'b']);
  });

  it('softmax, top-K, ablation changes, --ablate-heads parsing, heat colormap', () => {
    const p = softmax([1, 3, 2]);
    expect(p.reduce((a, b) => a + b)).toBeCloseTo(1, 12);
    expect(topK(p, ['a', 'b', 'c'], 2).map((t) => t.label)).toEqual(['b', 'c']);
    expect(ablationChanges([0.5, 0.25, 0.25], [0.2, 0.3, 0.5], ['x', 'y', 'z'])[0]).toMatchObject({ label: 'x', change: expect.closeTo(-0.3, 12) });
    expect(parseAblateHeads('11:3, 0:0')).toEqual([[11, 3], [0, 0]]);
    expect(() => parseAblateHeads('3')).toThrow(/'3' is not LAYER:HEAD/);
    expect(heatColor(0)).toEqual([0, 0, 0]);
    expect(heatColor(1)).toEqual([255, 255, 255]);
  });

  it('attention maps: class-token rows and a rollout over the patch grid that sums to 1', async () => {
    const m = new VisionTransformer(FMNIST28, { init: 'random', seed: 2 }).eval();
    try {
      const img = prepareImage({ width: 28, height: 28, data: Uint8Array.from(randomArray(28 * 28 * 3, 5, 0, 255), Math.floor) }, { imageSize: 28 });
      const lm = { model: m, config: FMNIST28, labels: presetLabels('generic', 10), mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], notes: [] };
      const r = await attentionMaps(lm, img);
      expect(r.grid).toBe(4);
      expect(r.cls.length).toBe(2);
      expect(r.cls[0].length).toBe(4);
      expect(r.cls[0][0].length).toBe(16);
      expect(r.rollout.reduce((a, b) => a + b)).toBeCloseTo(1, 6);
      // class-token attention to patches is a probability row minus its own entry: in (0, 1)
      for (const heads of r.cls) for (const row of heads) expect(row.reduce((a, b) => a + b)).toBeLessThan(1);
      const fused = await m.predictLogits(img.input, 1);
      expectClose(r.logits, fused, 2e-5, 2e-5, 'attention-map forward logits vs fused');
    } finally {
      m.dispose();
    }
  });
});

describe('CLI predict and attention', () => {
  it('predict --json (one object for one image, an array for several) and attention overlays + ablation numbers', async () => {
    const m = new VisionTransformer(SMALL48, { init: 'random', seed: 21 }).eval();
    const labels = ['a', 'b', 'c', 'd', 'e'];
    const weights = join(tmp, 'cli.safetensors');
    const imgs = [0, 1].map((k) => {
      const p = join(tmp, `cli${k}.png`);
      writeFileSync(p, pngBytes(48, 48, randomRgba(48 * 48, 30 + k)));
      return p;
    });
    let direct: Float32Array;
    try {
      writeFileSync(weights, serializeSafetensors(await m.stateDict(), celluscanMetadata({ config: SMALL48, labels, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] })));
      direct = await m.predictLogits(prepareImage(decodeImage(pngBytes(48, 48, randomRgba(48 * 48, 30))), { imageSize: 48, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] }).input, 1);
    } finally {
      m.dispose();
    }
    const cli = (args: string[]) => execFileSync(process.execPath, ['bin/celluscan.mjs', ...args], { encoding: 'utf8', timeout: 120_000, stdio: ['ignore', 'pipe', 'pipe'] });
    const one = JSON.parse(cli(['predict', '--weights', weights, '--image', imgs[0], '--json', '--top', '2']));
    expect(one.image).toBe(imgs[0]);
    expectClose(one.logits, direct, 1e-5, 1e-5, 'CLI logits vs in-process');
    expect(one.top.map((t: { label: string }) => t.label)).toEqual(topK(softmax(one.logits), labels, 2).map((t) => t.label));
    const two = JSON.parse(cli(['predict', '--weights', weights, '--image', ...imgs, '--json']));
    expect(two.map((r: { image: string }) => r.image)).toEqual(imgs);
    const out = join(tmp, 'att');
    const att = JSON.parse(cli(['attention', '--weights', weights, '--image', imgs[0], '--out', out, '--json', '--ablate-heads', '1:0,1:2']));
    expect(att.grid).toBe(3);
    expect(att.cls_attention.length).toBe(2);
    expect(att.cls_attention[1].length).toBe(3);
    expect(att.rollout.length).toBe(9);
    expect(att.changes.length).toBe(5);
    expect(att.changes.reduce((s: number, c: { change: number }) => s + c.change, 0)).toBeCloseTo(0, 9);
    expect(att.ablated_heads).toEqual([[1, 0], [1, 2]]);
    const files = readdirSync(out).sort();
    expect(files).toEqual(['input.png', 'layer_00_head_00.png', 'layer_00_head_01.png', 'layer_00_head_02.png', 'layer_00_mean.png', 'layer_01_head_00.png', 'layer_01_head_01.png', 'layer_01_head_02.png', 'layer_01_mean.png', 'rollout.png']);
    const overlay = decodeImage(new Uint8Array(readFileSync(join(out, 'rollout.png'))));
    expect([overlay.width, overlay.height]).toEqual([48, 48]);
    // a bad ablation is a one-line error and writes nothing
    const out2 = join(tmp, 'att2');
    const r = spawnSync(process.execPath, ['bin/celluscan.mjs', 'attention', '--weights', weights, '--image', imgs[0], '--out', out2, '--ablate-heads', '2:0'], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^celluscan: --ablate-heads: 2:0 is out of range/m);
    expect(existsSync(out2)).toBe(false);
  });
});

describe('CLI attention --out', () => {
  it('an existing file as --out is a one-line usage error, found before the model runs; the file is left as it was', async () => {
    const m = new VisionTransformer(SMALL48, { init: 'random', seed: 5 }).eval();
    const weights = join(tmp, 'out-check.safetensors');
    try {
      writeFileSync(weights, serializeSafetensors(await m.stateDict(), celluscanMetadata({ config: SMALL48 })));
    } finally {
      m.dispose();
    }
    const img = join(tmp, 'out-check.png');
    writeFileSync(img, pngBytes(48, 48, randomRgba(48 * 48, 9)));
    const file = join(tmp, 'one.png');
    writeFileSync(file, 'not a folder');
    const run = (out: string) => {
      const r = spawnSync(process.execPath, ['bin/celluscan.mjs', 'attention', '--weights', weights, '--image', img, '--out', out], { encoding: 'utf8', timeout: 120_000 });
      return { status: r.status, stdout: r.stdout, err: r.stderr.split('\n').filter((l) => l && !l.startsWith('Warning:')) };
    };
    expect(run(file)).toEqual({ status: 1, stdout: '', err: [`celluscan: attention: --out must be a folder, but ${file} is a file`] });
    expect(run(join(file, 'sub'))).toEqual({ status: 1, stdout: '', err: [`celluscan: attention: cannot create the --out folder ${join(file, 'sub')}: a file stands in its path`] });
    expect(readFileSync(file, 'utf8')).toBe('not a folder');
  });
});

describe('decodeImage: PNG headers are checked before decoding', () => {
  const crc = (b: Buffer) => {
    let c = ~0;
    for (const x of b) {
      c ^= x;
      for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
    }
    return ~c >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const png = (w: number, h: number, raw: Buffer) => {
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(w, 0);
    ihdr.writeUInt32BE(h, 4);
    ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, not interlaced
    return new Uint8Array(Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]));
  };

  it('a declared size above 100 megapixels is refused before anything is allocated; pixel data short of the header is corrupt', () => {
    expect(() => decodeImage(png(30000, 30000, Buffer.alloc(300)), 'huge.png')).toThrow(/^huge\.png: PNG declares 30000×30000 pixels, above the limit of 100 megapixels/);
    expect(() => decodeImage(png(1000, 1000, Buffer.alloc(300)), 'short.png')).toThrow(/^short\.png: corrupt PNG \(truncated: 300 of the 3001000 bytes/);
    // whole rows (a filter byte and 3 bytes per pixel each) decode
    const rows = Buffer.concat([0, 1, 2, 3].map((r) => Buffer.from([0, ...Array.from({ length: 15 }, (_, i) => r * 15 + i)])));
    const img = decodeImage(png(5, 4, rows), 'ok.png');
    expect([img.width, img.height, img.data[3 * 7 + 1]]).toEqual([5, 4, 22]);
  });
});
