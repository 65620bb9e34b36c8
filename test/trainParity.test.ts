// Training parity with PyTorch: tools/torch_train_parity.py builds a small odd-config torchvision VisionTransformer
// (image 28, patch 7, 2 layers, 4 heads, hidden 64, MLP 128, 10 classes, dropout 0), writes its initial state_dict,
// an ImageFolder of the first 150 Fashion-MNIST images as 28×28 PNGs (no resampling; 150 = 9 batches of 16 + a
// partial one, so the last-partial-batch rule and the epoch wrap are both exercised), and trains 16 steps with
// torch.optim.AdamW in the ImageFolder order. `celluscan train --init … --no-shuffle --no-augment --mean --std
// --max-steps 16` must give the same per-step losses within 1e-3 relative (measured here: ~1e-7).
//
// Needs Debian's python3-torch + python3-torchvision (or CELLUSCAN_PYTHON pointing at a python that has them);
// without them the test FAILS with the install hint (never skips).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { requireTorchPython } from '../tools/torchPython.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SCRIPT = join(ROOT, 'tools', 'torch_train_parity.py');
const tmp = mkdtempSync(join(tmpdir(), 'celluscan-trainparity-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function findPython(): string {
  return requireTorchPython(['torch', 'torchvision', 'numpy', 'PIL']);
}

const MEAN = '0.286,0.286,0.286';
const STD = '0.353,0.353,0.353';

function runCase(name: string, shared: { py: string[]; ours: string[] }) {
  const dir = join(tmp, name);
  const py = findPython();
  const p = spawnSync(py, [SCRIPT, '--out', dir, '--images', '150', '--steps', '16', '--batch', '16', ...shared.py], { encoding: 'utf8', timeout: 240_000 });
  if (p.status !== 0) throw new Error(`${SCRIPT} failed (${p.status ?? p.signal}):\n${p.stderr}`);
  const torch = JSON.parse(readFileSync(join(dir, 'torch.json'), 'utf8')) as { losses: number[]; mean: number[]; std: number[] };
  expect(torch.mean.join(',')).toBe(MEAN);
  const run = join(dir, 'run');
  const args = [
    'bin/celluscan.mjs', 'train', '--data', join(dir, 'data'), '--out', run, '--init', join(dir, 'init.safetensors'),
    '--no-shuffle', '--no-augment', '--mean', MEAN, '--std', STD, '--max-steps', '16', '--epochs', '2', '--batch-size', '16', '--val-fraction', '0',
    ...shared.ours,
  ];
  const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', timeout: 240_000, env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' } });
  expect(r.status, r.stderr + r.stdout).toBe(0);
  const steps = readFileSync(join(run, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((l) => l.type === 'step');
  const ours = steps.map((l) => l.loss as number);
  expect(ours).toHaveLength(torch.losses.length);
  const rel = ours.map((v, i) => Math.abs(v - torch.losses[i]) / Math.abs(torch.losses[i]));
  const worst = Math.max(...rel);
  console.log(`${name}: max relative loss difference vs PyTorch over ${ours.length} steps: ${worst.toExponential(2)}`);
  rel.forEach((d, i) => expect(d, `step ${i + 1}: ours ${ours[i]}, torch ${torch.losses[i]}`).toBeLessThanOrEqual(1e-3));
  // The loss moves (the run is not trivially constant), so matching it says something.
  expect(Math.max(...ours) - Math.min(...ours)).toBeGreaterThan(0.1);
  return steps;
}

describe('training parity with torchvision + torch.optim.AdamW', () => {
  it('seed defaults (AdamW lr 3e-4, wd 1e-2 on all parameters, constant LR): per-step losses within 1e-3 relative', () => {
    runCase('defaults', { py: [], ours: [] });
  }, 600_000);

  it('label smoothing, global-norm clipping, no decay on norms/biases, warmup + cosine: per-step losses within 1e-3 relative', () => {
    const opts = { lr: '1e-3', wd: '0.05', ls: '0.1', clip: '0.5', warm: '4' };
    const steps = runCase('recipe', {
      py: ['--lr', opts.lr, '--weight-decay', opts.wd, '--label-smoothing', opts.ls, '--clip-grad-norm', opts.clip, '--no-decay-norm-bias', '--warmup-steps', opts.warm, '--cosine'],
      ours: ['--lr', opts.lr, '--weight-decay', opts.wd, '--label-smoothing', opts.ls, '--clip-grad-norm', opts.clip, '--no-decay-norm-bias', '--warmup-steps', opts.warm, '--schedule', 'cosine'],
    });
    // Clipping acted (norms above 0.5) and the schedule is the one torch's LambdaLR followed.
    expect(steps.some((s) => s.grad_norm > 0.5)).toBe(true);
    expect(steps[0].lr).toBeCloseTo(1e-3 / 4, 12);
    expect(steps[15].lr).toBeLessThan(1e-4);
  }, 600_000);
});
