// `celluscan predict` over a folder or several files: an image that cannot be read or decoded is skipped with a
// one-line warning naming it and why, the others are predicted as before, a summary line counts the skipped ones and
// the exit status is 1; --json stays the same array of predictions. Every image failing, or one image given alone
// failing, is still a one-line error.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pngjs from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomArray } from '../src/kernels/ref/math.js';
import type { VitConfig } from '../src/vit/config.js';
import { decodeImage } from '../src/vit/decode.js';
import { prepareImage } from '../src/vit/image.js';
import { celluscanMetadata, serializeSafetensors } from '../src/vit/safetensors.js';
import { VisionTransformer } from '../src/vit/model.js';
import { expectClose, useGpu } from './gpu.js';

useGpu();

const CFG: VitConfig = { image_size: 32, patch_size: 16, num_layers: 1, num_heads: 2, hidden_dim: 32, mlp_dim: 48, num_classes: 3, dropout: 0, attention_dropout: 0 };
const LABELS = ['neutrophil', 'lymphocyte', 'monocyte'];
const NORM = { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] };

const tmp = mkdtempSync(join(tmpdir(), 'celluscan-predict-folder-'));
const cache = join(tmp, 'cache');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function pngBytes(width: number, height: number, rgba: Uint8Array): Uint8Array {
  const png = new pngjs.PNG({ width, height });
  png.data = Buffer.from(rgba);
  return new Uint8Array(pngjs.PNG.sync.write(png));
}

function randomRgba(n: number, seed: number): Uint8Array {
  return Uint8Array.from(randomArray(n * 4, seed, 0, 256), (v) => Math.floor(v));
}

function celluscan(args: string[]) {
  const r = spawnSync(process.execPath, ['bin/celluscan.mjs', ...args], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, XDG_CACHE_HOME: cache },
  });
  // Dawn's own "Warning: maxDynamic…" lines on lavapipe are not ours.
  const err = r.stderr.split('\n').filter((l) => l && !l.startsWith('Warning:'));
  return { status: r.status, stdout: r.stdout, err };
}

const weights = join(tmp, 'model.safetensors');
const folder = join(tmp, 'cells');
const goodA = join(folder, 'a.png');
const goodC = join(folder, 'c.png');
const badPng = join(folder, 'bad.png'); // random bytes
const truncPng = join(folder, 'trunc.png'); // a good PNG cut short
const badJpg = join(folder, 'bad.jpg'); // a JPEG header, then garbage
const direct = new Map<string, Float32Array>();

beforeAll(async () => {
  mkdirSync(folder, { recursive: true });
  mkdirSync(cache, { recursive: true });
  const goodBytes = new Map([
    [goodA, pngBytes(32, 32, randomRgba(32 * 32, 11))],
    [goodC, pngBytes(40, 24, randomRgba(40 * 24, 12))],
  ]);
  for (const [p, b] of goodBytes) writeFileSync(p, b);
  const junk = Uint8Array.from(randomArray(300, 13, 0, 256), (v) => Math.floor(v));
  junk[0] = 0; // neither the PNG nor the JPEG signature
  writeFileSync(badPng, junk);
  const whole = pngBytes(32, 32, randomRgba(32 * 32, 14));
  writeFileSync(truncPng, whole.subarray(0, Math.floor(whole.length / 2)));
  writeFileSync(badJpg, Uint8Array.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, 1, 2, 3, 4, 5, 6, 7]));
  const m = new VisionTransformer(CFG, { init: 'random', seed: 31 }).eval();
  try {
    writeFileSync(weights, serializeSafetensors(await m.stateDict(), celluscanMetadata({ config: CFG, labels: LABELS, ...NORM })));
    for (const [p, b] of goodBytes) direct.set(p, await m.predictLogits(prepareImage(decodeImage(b, p), { imageSize: 32, ...NORM }).input, 1));
  } finally {
    m.dispose();
  }
});

const noStack = (lines: string[]) => expect(lines.filter((l) => /^\s+at /.test(l))).toEqual([]);

describe('predict skips images that cannot be decoded', () => {
  it('a folder with two good PNGs and three bad files: --json predicts the good ones, names the bad ones on stderr, exit 1', () => {
    const r = celluscan(['predict', '--weights', weights, '--image', folder, '--json', '--top', '2']);
    expect(r.status).toBe(1);
    const out = JSON.parse(r.stdout);
    expect(Array.isArray(out)).toBe(true);
    expect(out.map((p: { image: string }) => p.image)).toEqual([goodA, goodC]);
    for (const p of out) {
      expect(Object.keys(p).sort()).toEqual(['image', 'logits', 'probs', 'top']);
      expectClose(p.logits, direct.get(p.image)!, 1e-5, 1e-5, `${p.image}: CLI logits vs in-process`);
      expect(p.top.length).toBe(2);
    }
    // one warning per bad file (folder order: sorted), then the summary
    expect(r.err).toEqual([
      expect.stringMatching(/^celluscan: warning: skipped .*bad\.jpg: corrupt JPEG/),
      expect.stringMatching(/^celluscan: warning: skipped .*bad\.png: not a PNG or JPEG image/),
      expect.stringMatching(/^celluscan: warning: skipped .*trunc\.png: corrupt PNG/),
      'celluscan: 3 of 5 images skipped (could not be read or decoded)',
    ]);
    expect(r.err[0]).toContain(badJpg);
    expect(r.err[1]).toContain(badPng);
    expect(r.err[2]).toContain(truncPng);
    noStack(r.err);
  });

  it('several files given one by one, readable output: the good ones are printed, the bad one named, exit 1', () => {
    const r = celluscan(['predict', '--weights', weights, '--image', goodA, badPng, goodC, '--top', '1']);
    expect(r.status).toBe(1);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines.filter((l) => !l.startsWith(' '))).toEqual([goodA, goodC]);
    expect(lines.filter((l) => /^\s+1\. /.test(l)).length).toBe(2);
    expect(r.err).toEqual([expect.stringMatching(new RegExp(`^celluscan: warning: skipped ${badPng.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: not a PNG or JPEG image`)), 'celluscan: 1 of 3 images skipped (could not be read or decoded)']);
    noStack(r.err);
  });

  it('with nothing to skip: exit 0, no warnings, the same JSON array', () => {
    const r = celluscan(['predict', '--weights', weights, '--image', goodA, goodC, '--json']);
    expect(r.status).toBe(0);
    expect(r.err).toEqual([]);
    expect(JSON.parse(r.stdout).map((p: { image: string }) => p.image)).toEqual([goodA, goodC]);
  });

  it('every image failing is an error (each named), found before the weights are read; nothing on stdout', () => {
    const r = celluscan(['predict', '--weights', join(tmp, 'absent.safetensors'), '--image', badPng, truncPng, '--json']);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.err).toEqual([
      expect.stringMatching(/^celluscan: warning: skipped .*bad\.png: not a PNG or JPEG image/),
      expect.stringMatching(/^celluscan: warning: skipped .*trunc\.png: corrupt PNG/),
      'celluscan: predict: none of the 2 images could be read or decoded (each is named above)',
    ]);
  });

  it('a single corrupt image given alone is still a one-line error naming the file', () => {
    const r = celluscan(['predict', '--weights', weights, '--image', truncPng, '--json']);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.err).toEqual([expect.stringMatching(/^celluscan: .*trunc\.png: corrupt PNG \(truncated/)]);
    expect(r.err[0]).toContain(truncPng);
  });
});
