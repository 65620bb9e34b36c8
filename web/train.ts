// In-page training: a tiny ViT learns four kinds of synthetic "cells" (web/synthetic.ts) with the library's
// autograd and AdamW, one step per queued GPU job (so the analysis above can run between steps), with a live
// loss chart and a held-out accuracy every few steps. The trained model can then be used in the page above.
//
// State for tests: window.celluscan.training (status, step, losses, accuracy).
import { AdamW } from '../src/autograd/optim.js';
import * as ops from '../src/autograd/ops.js';
import { Tensor } from '../src/autograd/tensor.js';
import { GpuArray, scope } from '../src/kernels/memory.js';
import type { VitConfig } from '../src/vit/config.js';
import { prepareImage } from '../src/vit/image.js';
import { VisionTransformer } from '../src/vit/model.js';
import type { LoadedModel } from '../src/vit/predict.js';
import { drawSyntheticCell, SYNTHETIC_KINDS } from './synthetic.js';

export interface TrainingHooks {
  enqueue: (job: () => Promise<void>) => Promise<void>;
  ready: () => boolean;
  /** Make a model the page's current one. */
  useModel: (lm: LoadedModel, what: string) => Promise<void>;
}

export interface TrainingState {
  status: 'idle' | 'running' | 'done' | 'stopped' | 'error';
  step: number;
  steps: number;
  losses: number[];
  /** [step, held-out accuracy] pairs. */
  accuracy: [number, number][];
  ms?: number;
}

const CONFIG: VitConfig = { image_size: 16, patch_size: 4, num_layers: 2, num_heads: 2, hidden_dim: 32, mlp_dim: 64, num_classes: 4, dropout: 0, attention_dropout: 0 };
const MEAN = [0.5, 0.5, 0.5];
const STD = [0.25, 0.25, 0.25];
const TRAIN_PER_CLASS = 64;
const EVAL_PER_CLASS = 16;
const BATCH = 32;
const EVAL_EVERY = 25;

interface Sample {
  x: Float32Array;
  y: number;
}

function makeSet(perClass: number, seed0: number): Sample[] {
  const out: Sample[] = [];
  for (let i = 0; i < perClass; i++) {
    for (let k = 0; k < SYNTHETIC_KINDS.length; k++) {
      const rgb = drawSyntheticCell(48, k, seed0 + i * 17 + k * 7919);
      out.push({ x: prepareImage(rgb, { imageSize: CONFIG.image_size, mean: MEAN, std: STD }).input, y: k });
    }
  }
  return out;
}

function batchOf(set: Sample[], idx: number[]): { x: Float32Array; y: Float32Array } {
  const n = 3 * CONFIG.image_size * CONFIG.image_size;
  const x = new Float32Array(idx.length * n);
  const y = new Float32Array(idx.length);
  idx.forEach((i, j) => {
    x.set(set[i].x, j * n);
    y[j] = set[i].y;
  });
  return { x, y };
}

export function setupTraining(hooks: TrainingHooks): void {
  const startBtn = document.getElementById('train-start') as HTMLButtonElement | null;
  if (!startBtn) return;
  const stopBtn = document.getElementById('train-stop') as HTMLButtonElement;
  const useBtn = document.getElementById('train-use') as HTMLButtonElement;
  const stepsIn = document.getElementById('train-steps') as HTMLInputElement;
  const status = document.getElementById('train-status')!;
  const chart = document.getElementById('loss-chart') as HTMLCanvasElement;
  const st: TrainingState = { status: 'idle', step: 0, steps: 0, losses: [], accuracy: [] };
  (window as unknown as { celluscan: { training: TrainingState } }).celluscan.training = st;
  let model: VisionTransformer | undefined;
  let stop = false;
  let runs = 0;
  if (!hooks.ready()) {
    startBtn.disabled = true;
    return;
  }
  drawChart(chart, st);

  startBtn.addEventListener('click', async () => {
    startBtn.disabled = true;
    useBtn.disabled = true;
    stopBtn.disabled = false;
    stop = false;
    const steps = Math.max(1, Math.min(5000, Math.round(Number(stepsIn.value) || 100)));
    Object.assign(st, { status: 'running', step: 0, steps, losses: [], accuracy: [], ms: undefined });
    status.textContent = 'drawing the synthetic data…';
    const t0 = performance.now();
    const train = makeSet(TRAIN_PER_CLASS, 1);
    const test = makeSet(EVAL_PER_CLASS, 1_000_003);
    model?.dispose();
    // Deterministic: the data, the batches and (per run of this page) the initialisation are seeded.
    const m = new VisionTransformer(CONFIG, { seed: ++runs });
    model = m;
    m.train();
    const opt = new AdamW(m.parameters(), { lr: 3e-3, weightDecay: 1e-4 });
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296);
    const evaluate = async () => {
      m.eval();
      const { x } = batchOf(test, test.map((_, i) => i));
      const logits = await m.predictLogits(x, test.length);
      m.train();
      const C = CONFIG.num_classes;
      let right = 0;
      test.forEach((s, i) => {
        let best = 0;
        for (let c = 1; c < C; c++) if (logits[i * C + c] > logits[i * C + best]) best = c;
        if (best === s.y) right++;
      });
      st.accuracy.push([st.step, right / test.length]);
    };
    const trainStep = async () => {
      const idx = Array.from({ length: BATCH }, () => Math.floor(rand() * train.length));
      const b = batchOf(train, idx);
      const loss = await scope(async () => {
        const logits = m.forward(Tensor.from(b.x, [BATCH, 3, CONFIG.image_size, CONFIG.image_size])).logits;
        const l = ops.crossEntropy(logits, GpuArray.fromData(b.y, [BATCH]));
        l.backward();
        const v = await l.item();
        opt.step();
        return v;
      });
      opt.zeroGrad();
      if (!Number.isFinite(loss)) throw new Error(`loss is ${loss}`);
      st.losses.push(loss);
      st.step++;
      if (st.step % EVAL_EVERY === 0 || st.step === steps) await evaluate();
    };
    const gpuErrors = () => (window as unknown as { celluscan: { gpuErrors: string[] } }).celluscan.gpuErrors.length;
    const errorsBefore = gpuErrors();
    try {
      for (let s = 0; s < steps && !stop; s++) {
        let failed: unknown;
        await hooks.enqueue(async () => {
          try {
            await trainStep();
          } catch (e) {
            failed = e;
            throw e;
          }
        });
        if (failed) throw new Error(`training stopped at step ${st.step + 1}: ${(failed as Error).message ?? String(failed)}`);
        if (gpuErrors() > errorsBefore) throw new Error(`training stopped at step ${st.step}: WebGPU reported an error (see the message above)`);
        const acc = st.accuracy.at(-1);
        status.textContent = `step ${st.step}/${steps} · loss ${st.losses.at(-1)!.toFixed(3)}${acc ? ` · held-out accuracy ${(100 * acc[1]).toFixed(0)}% (step ${acc[0]})` : ''}`;
        drawChart(chart, st);
      }
      st.ms = performance.now() - t0;
      st.status = stop ? 'stopped' : 'done';
      status.textContent += ` · ${(st.ms / 1000).toFixed(1)} s`;
      useBtn.disabled = false;
    } catch (e) {
      st.status = 'error';
      status.textContent = (e as Error).message;
    } finally {
      startBtn.disabled = false;
      stopBtn.disabled = true;
      drawChart(chart, st);
    }
  });
  stopBtn.addEventListener('click', () => {
    stop = true;
  });
  useBtn.addEventListener('click', () => {
    if (!model) return;
    const m = model;
    model = undefined; // the page owns it now (and disposes it when another model is loaded)
    useBtn.disabled = true;
    m.eval();
    void hooks.useModel(
      { model: m, config: CONFIG, labels: [...SYNTHETIC_KINDS], mean: MEAN, std: STD, notes: ['trained in this page on synthetic cells: try it on "synthetic sample" images'] },
      'the model trained here',
    );
  });
}

/** Loss per step (log scale), with the held-out accuracy points on a right-hand 0–100% axis. */
function drawChart(c: HTMLCanvasElement, st: TrainingState): void {
  const dpr = window.devicePixelRatio || 1;
  const W = c.clientWidth || c.width;
  const H = c.clientHeight || c.height;
  c.width = Math.round(W * dpr);
  c.height = Math.round(H * dpr);
  const g = c.getContext('2d')!;
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, W, H);
  const L = 46;
  const R = 44;
  const T = 12;
  const B = 26;
  g.font = '11px system-ui, sans-serif';
  g.strokeStyle = '#ccc';
  g.strokeRect(L, T, W - L - R, H - T - B);
  const n = Math.max(st.steps, st.losses.length, 1);
  const xs = (i: number) => L + ((W - L - R) * i) / n;
  const ls = st.losses.filter((v) => v > 0);
  const lo = Math.log10(Math.max(1e-3, Math.min(...ls, 0.05)));
  const hi = Math.log10(Math.max(...ls, 2));
  const ys = (v: number) => T + ((H - T - B) * (hi - Math.log10(Math.max(v, 1e-3)))) / (hi - lo || 1);
  g.fillStyle = '#6b6676';
  g.textAlign = 'right';
  for (let e = Math.ceil(lo * 2) / 2; e <= hi + 1e-9; e += 0.5) {
    const v = 10 ** e;
    g.fillText(v >= 1 ? v.toFixed(0) : v.toPrecision(1), L - 4, ys(v) + 4);
  }
  g.textAlign = 'center';
  g.fillText('step', (L + W - R) / 2, H - 6);
  g.fillText(String(n), W - R, H - 12);
  g.fillText('0', L, H - 12);
  g.save();
  g.translate(12, (T + H - B) / 2);
  g.rotate(-Math.PI / 2);
  g.fillText('loss', 0, 0);
  g.restore();
  if (st.losses.length) {
    g.strokeStyle = '#7a3fa0';
    g.lineWidth = 1.5;
    g.beginPath();
    st.losses.forEach((v, i) => (i ? g.lineTo(xs(i + 1), ys(v)) : g.moveTo(xs(i + 1), ys(v))));
    g.stroke();
  }
  const ya = (a: number) => T + (H - T - B) * (1 - a);
  g.textAlign = 'left';
  g.fillStyle = '#1e6f3a';
  g.fillText('100%', W - R + 4, ya(1) + 4);
  g.fillText('acc', W - R + 4, ya(0.5) + 4);
  g.fillText('0%', W - R + 4, ya(0) + 4);
  for (const [s, a] of st.accuracy) {
    g.beginPath();
    g.arc(xs(s), ya(a), 3, 0, 2 * Math.PI);
    g.fill();
  }
}
