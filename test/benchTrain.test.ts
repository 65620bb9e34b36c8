// The training-throughput benchmark (bench/train.ts): its input-pipeline mode trains on the batches the trainer would
// make, and making the next batch during the step (as `celluscan train` does) changes the timing, not what is trained.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { benchTrain } from '../bench/train.js';
import { useGpu } from './gpu.js';

useGpu();

describe('bench train', () => {
  it('input pipeline: batches made ahead train exactly as batches made in turn; augmented batches differ from the fixed one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-train-'));
    try {
      // 32 px, patch 8: the augmentations (crops, rotations, colour ops) act on a real image grid; 4 classes
      const config = join(dir, 'tiny.json');
      writeFileSync(config, JSON.stringify({ image_size: 32, patch_size: 8, num_layers: 1, num_heads: 2, hidden_dim: 16, mlp_dim: 32, num_classes: 4 }));
      const common = { model: config, batch: 6, runs: 1, steps: 3 } as const;
      const inTurn = await benchTrain({ ...common, input: 'trivialaugment', overlap: false });
      const ahead = await benchTrain({ ...common, input: 'trivialaugment', overlap: true });
      const fixed = await benchTrain({ ...common });
      for (const r of [inTurn, ahead, fixed]) {
        expect(r.losses).toHaveLength(2 + 3); // 2 warm-up steps, then runs × steps
        expect(r.losses.every(Number.isFinite)).toBe(true);
        expect(r.images_per_s).toBeGreaterThan(0);
      }
      expect([inTurn.input, inTurn.overlap, ahead.overlap, fixed.input, fixed.overlap]).toEqual(['trivialaugment', false, true, 'random', undefined]);
      // Same model initialisation, same batches, same kernels in the same order: bit-identical losses.
      expect(ahead.losses).toEqual(inTurn.losses);
      // The first step's loss is the initial model's on each input: a pipeline that handed over the fixed batch (or one
      // batch every step) would match here.
      expect(inTurn.losses[0]).not.toBe(fixed.losses[0]);
      expect(new Set(inTurn.losses.map((l) => l.toFixed(6))).size).toBeGreaterThan(1);
      // Peak GPU memory: at least the weights and AdamW's two moments (3 floats per parameter; the tiny model's
      // parameter count from its torchvision shapes) plus one batch of input images.
      const { expectedShapes } = await import('../src/vit/config.js');
      const n = [...expectedShapes({ image_size: 32, patch_size: 8, num_layers: 1, num_heads: 2, hidden_dim: 16, mlp_dim: 32, num_classes: 4, dropout: 0, attention_dropout: 0 }).values()].reduce((a, sh) => a + sh.reduce((x, y) => x * y, 1), 0);
      for (const r of [inTurn, ahead, fixed]) expect(r.peak_mib! * 2 ** 20).toBeGreaterThanOrEqual(3 * 4 * n + 6 * 3 * 32 * 32 * 4);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
