// Training throughput: images/s of full training steps (host batch upload, forward, cross-entropy, backward, AdamW,
// loss read back) on random inputs, best of `runs` timed runs of `steps` steps after 2 warm-up steps. Models: the
// fashion-mnist-quick / -p7 presets' (image 28 / patch 7 / 4 layers / 4 heads / dim 64 / MLP 128, 10 classes, batch 128), or a
// ViT preset such as vit_b_16 (14 classes; batch 32 by default).
// Peer: the same torchvision model and torch.optim.AdamW through python3 (when torch is installed): on the CPU, or
// with device 'auto' on CUDA when torch sees a GPU (fp32, TF32 off: the same arithmetic as ours).
import { markTimedEnd, warmClocks } from '../src/kernels/clocks.js';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { findTorchPython } from '../tools/torchPython.js';
import * as ops from '../src/autograd/ops.js';
import { AdamW } from '../src/autograd/optim.js';
import { Tensor } from '../src/autograd/tensor.js';
import { gpu, initGpu } from '../src/kernels/device.js';
import { flush } from '../src/kernels/encoder.js';
import { GpuArray, memoryStats, resetPeakMemory, scope } from '../src/kernels/memory.js';
import { randomArray } from '../src/kernels/ref/math.js';
import { prepareDataset, type PreparedDataset } from '../src/train/cache.js';
import { ArrayDataset } from '../src/train/data.js';
import { FMNIST_VIT } from '../src/train/presets.js';
import { trainBatch } from '../src/train/trainer.js';
import { validateConfig, VIT_PRESETS, vitPreset, type VitConfig, type VitPresetName } from '../src/vit/config.js';
import { VisionTransformer } from '../src/vit/model.js';

export interface BenchTrainOptions {
  /** 'fmnist' (the patch-7 Fashion-MNIST model of the fashion-mnist-quick and -p7 presets, default) or a ViT preset name such as 'vit_b_16'. */
  model?: string;
  /** A model given as its config instead (batch 32 unless `batch` says otherwise). */
  config?: VitConfig;
  /** Where the PyTorch peer runs: 'cpu' (default) or 'auto' (CUDA when torch sees a GPU). */
  peerDevice?: 'cpu' | 'auto';
  runs?: number;
  /** Steps per timed run (default 3). */
  steps?: number;
  batch?: number;
  peers?: boolean;
  /**
   * Where the images come from: 'random' (default: one fixed float batch, uploaded every step — the kernels' speed) or
   * 'trivialaugment' (the trainer's input pipeline: uint8 images made into each step's batch by flip +
   * TrivialAugmentWide + normalisation on the CPU, as `celluscan train` does).
   */
  input?: 'random' | 'trivialaugment';
  /** With input 'trivialaugment': make the next batch while the GPU runs this one, as the trainer does (default true). */
  overlap?: boolean;
}

export type BenchTrainResult = {
  op: 'train';
  config: string;
  batch: number;
  images_per_s: number;
  seconds_per_step: number;
  run_images_per_s: number[];
  /**
   * Median host time to record one step (forward, backward, AdamW: from the step's start to the loss read-back,
   * before any wait), ms: on a GPU this bounds the step rate of a small model (lavapipe runs the kernels on the same
   * CPU cores meanwhile, so there it is an upper bound).
   */
  host_ms_per_step: number;
  /** Where the images came from (BenchTrainOptions.input) and, for the input pipeline, whether batches were made ahead. */
  input: 'random' | 'trivialaugment';
  overlap?: boolean;
  /**
   * Every step's loss, warm-up steps first (2, and on a hardware GPU as many more as its clock warm-up took): two runs
   * of the same options on a CPU adapter trained on the same batches iff these match.
   */
  losses: number[];
  pytorch_images_per_s?: number;
  /** Where the PyTorch peer ran, e.g. 'CPU' or 'CUDA fp32 (NVIDIA H100 80GB HBM3)'. */
  pytorch_device?: string;
  /**
   * The most GPU memory the run held at once: weights, AdamW's moments, a step's activations, gradients and temporaries
   * (the bytes of arrays alive at once, memory.ts) — beside PyTorch's torch.cuda.max_memory_allocated() on CUDA.
   */
  peak_mib?: number;
  pytorch_peak_mib?: number;
  adapter: string;
};

const shapeLabel = (c: VitConfig) => `img${c.image_size}/p${c.patch_size}/L${c.num_layers}/H${c.num_heads}/D${c.hidden_dim}/mlp${c.mlp_dim}`;

/**
 * A benchmark model by name: 'fmnist' (the patch-7 Fashion-MNIST ViT of the fashion-mnist-quick and -p7 presets), a ViT preset with 14 classes, or a path to a
 * JSON VitConfig (torchvision argument names, as `celluscan train --config` takes); its label and default batch.
 * `alsoKnown`: more accepted names for the error message of a caller that takes them (`tune`).
 */
export function benchModel(name: string, op = 'bench train', alsoKnown = ''): { config: VitConfig; label: string; batch: number } {
  if (name === 'fmnist') return { config: FMNIST_VIT, label: shapeLabel(FMNIST_VIT), batch: 128 };
  if (name.endsWith('.json')) {
    let c: VitConfig;
    try {
      c = { ...FMNIST_VIT, ...(JSON.parse(readFileSync(name, 'utf8')) as Partial<VitConfig>) };
    } catch (e) {
      throw new RangeError(`${op}: cannot read the model config ${name}: ${(e as Error).message}`);
    }
    validateConfig(c);
    return { config: c, label: shapeLabel(c), batch: c.image_size <= 64 ? 128 : 32 };
  }
  if (!(name in VIT_PRESETS)) throw new RangeError(`${op}: unknown model '${name}' (known: fmnist, ${Object.keys(VIT_PRESETS).join(', ')}${alsoKnown}, or a .json VitConfig)`);
  return { config: vitPreset(name as VitPresetName, { num_classes: 14 }), label: name, batch: 32 };
}

export async function benchTrain(opts: BenchTrainOptions = {}): Promise<BenchTrainResult> {
  const runs = opts.runs ?? 2;
  const steps = opts.steps ?? 3;
  if (opts.config) validateConfig(opts.config);
  const { config: c, label: CONFIG, batch } = opts.config ? { config: opts.config, label: shapeLabel(opts.config), batch: 32 } : benchModel(opts.model ?? 'fmnist');
  const B = opts.batch ?? batch;
  await initGpu();
  const model = new VisionTransformer(c, { init: 'random', seed: 1 });
  const opt = new AdamW(model.parameters(), { lr: 3e-4, weightDecay: 1e-2 });
  const S = c.image_size;
  const input = opts.input ?? 'random';
  const overlap = input !== 'random' && (opts.overlap ?? true);
  // the fixed batch (input 'random')
  const x = input === 'random' ? randomArray(B * 3 * S * S, 3, -2, 2) : new Float32Array(0);
  const y = Float32Array.from({ length: B }, (_, i) => i % c.num_classes);
  // The input pipeline: 4 batches' worth of random uint8 RGB images at the model's size, in memory (prepared as the
  // trainer's data is), each step's batch made from them by trainBatch with the step number as its epoch (new
  // augmentations every step).
  const images = input === 'random' ? null : syntheticImages(4 * B, S, c.num_classes);
  let made = 0;
  const makeBatch = () => {
    const k = made++;
    const b = trainBatch(images!, Array.from({ length: B }, (_, i) => (k * B + i) % images!.length), 'trivialaugment', { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], seed: 1, epoch: k });
    return { x: b.x, y: Float32Array.from(b.y) };
  };
  let ahead: { x: Float32Array; y: Float32Array } | null = null;
  const hostMs: number[] = [];
  const losses: number[] = [];
  const step = () =>
    scope(async () => {
      const t0 = performance.now();
      const batch = images ? (ahead ?? makeBatch()) : { x, y };
      ahead = null;
      const logits = model.forward(Tensor.from(batch.x, [B, 3, S, S])).logits;
      const loss = ops.crossEntropy(logits, GpuArray.fromData(batch.y, [B]));
      loss.backward();
      opt.step();
      hostMs.push(performance.now() - t0);
      if (overlap) {
        flush(); // as the trainer: the GPU runs this step while the CPU makes the next batch
        ahead = makeBatch();
      }
      const l = await loss.item();
      losses.push(l);
      opt.zeroGrad();
      return l;
    });
  try {
    resetPeakMemory(); // from the first step on (AdamW's moments are made there), as PyTorch's max_memory_allocated
    for (let i = 0; i < 2; i++) await step();
    // then, on a hardware GPU, steps until its clocks are up (src/kernels/clocks.ts: the steps above began with
    // compiling; a fashion-mnist step is ~13 ms of GPU work on an H100); their losses are warm-up losses too
    await warmClocks(step, -Infinity);
    hostMs.length = 0;
    const rates: number[] = [];
    for (let r = 0; r < runs; r++) {
      const t0 = performance.now();
      for (let i = 0; i < steps; i++) await step();
      rates.push((steps * B) / ((performance.now() - t0) / 1000));
    }
    markTimedEnd();
    const best = Math.max(...rates);
    const out: BenchTrainResult = {
      op: 'train',
      config: `${CONFIG} b${B}`,
      batch: B,
      images_per_s: best,
      seconds_per_step: B / best,
      run_images_per_s: rates,
      host_ms_per_step: [...hostMs].sort((a, b) => a - b)[hostMs.length >> 1],
      input,
      ...(input === 'random' ? {} : { overlap }),
      losses,
      peak_mib: memoryStats().peakLiveBytes / 2 ** 20,
      adapter: gpu().adapterKey,
    };
    if (opts.peers && input === 'random') {
      const t = torchTrainPeer(c, B, runs, steps, opts.peerDevice ?? 'cpu');
      if (t !== undefined) {
        out.pytorch_images_per_s = t.images_per_s;
        out.pytorch_device = t.device;
        if (t.peak_mib !== undefined) out.pytorch_peak_mib = t.peak_mib;
      }
    }
    return out;
  } finally {
    model.dispose();
    opt.dispose();
  }
}

const TORCH_SCRIPT = `
import json, sys, time, torch, torchvision
B, runs, steps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
cfg = json.loads(sys.argv[4])
dev = 'cuda' if sys.argv[5] == 'auto' and torch.cuda.is_available() else 'cpu'
if dev == 'cuda':
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision('highest')
torch.manual_seed(0)
m = torchvision.models.vision_transformer.VisionTransformer(**cfg).to(dev)
opt = torch.optim.AdamW(m.parameters(), lr=3e-4, weight_decay=1e-2)
x = torch.randn(B, 3, cfg['image_size'], cfg['image_size'], device=dev)
y = (torch.arange(B) % cfg['num_classes']).to(dev)
f = torch.nn.CrossEntropyLoss()
def step():
    opt.zero_grad()
    l = f(m(x), y)
    l.backward()
    opt.step()
    return l.item()  # reads the loss back, as ours does: a full synchronisation per step
for _ in range(2): step()
best = 0.0
for _ in range(runs):
    t = time.perf_counter()
    for _ in range(steps): step()
    best = max(best, steps * B / (time.perf_counter() - t))
name = f"CUDA fp32 ({torch.cuda.get_device_name()})" if dev == 'cuda' else 'CPU'
peak = torch.cuda.max_memory_allocated() / 2**20 if dev == 'cuda' else None
print(json.dumps({"images_per_s": best, "device": name, "threads": torch.get_num_threads(), "peak_mib": peak}))
`;

/** torchvision + torch.optim.AdamW (CPU, or CUDA with 'auto'), train images/s (best of runs); undefined when torch is missing. */
function torchTrainPeer(config: VitConfig, B: number, runs: number, steps: number, device: 'cpu' | 'auto'): { images_per_s: number; device: string; peak_mib?: number } | undefined {
  const cfg: Record<string, unknown> = { ...config };
  delete cfg.representation_size;
  const py = findTorchPython(['torch', 'torchvision']);
  if (py instanceof Error) return undefined;
  const r = spawnSync(py, ['-c', TORCH_SCRIPT, String(B), String(runs), String(Math.max(steps, 5)), JSON.stringify(cfg), device], { encoding: 'utf8', timeout: 600_000 });
  if (r.status === 0) {
    const j = JSON.parse(r.stdout.trim().split('\n').pop()!) as { images_per_s: number; device?: string; peak_mib?: number | null };
    if (Number.isFinite(j.images_per_s)) return { images_per_s: j.images_per_s, device: j.device ?? 'CPU', ...(typeof j.peak_mib === 'number' ? { peak_mib: j.peak_mib } : {}) };
  }
  return undefined;
}

/** n random uint8 RGB images of S×S with labels i mod classes, prepared in memory as the trainer's data. */
function syntheticImages(n: number, S: number, classes: number): PreparedDataset {
  const pixels = new Uint8Array(n * S * S * 3);
  let h = 0x9e3779b9;
  for (let i = 0; i < pixels.length; i++) {
    h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) + i;
    pixels[i] = h >>> 24;
  }
  const names = Array.from({ length: classes }, (_, i) => `class${i}`);
  const ds = new ArrayDataset(names, pixels, Array.from({ length: n }, (_, i) => i % classes), S, S, 3, 'bench-train synthetic', 'synthetic');
  return prepareDataset(ds, { imageSize: S, cacheDir: false, warn: () => {} });
}
