// Training throughput: images/s of full training steps (host batch upload, forward, cross-entropy, backward, AdamW,
// loss read back) for the fashion-mnist preset's model (image 28 / patch 7 / 4 layers / 4 heads / dim 64 / MLP 128,
// 10 classes, batch 128) on random inputs, best of `runs` timed runs of `steps` steps after 2 warm-up steps.
// Peer: the same torchvision model and torch.optim.AdamW on the CPU through python3 (when torch is installed).
import { spawnSync } from 'node:child_process';
import { findTorchPython } from '../tools/torchPython.js';
import * as ops from '../src/autograd/ops.js';
import { AdamW } from '../src/autograd/optim.js';
import { Tensor } from '../src/autograd/tensor.js';
import { gpu, initGpu } from '../src/kernels/device.js';
import { GpuArray, scope } from '../src/kernels/memory.js';
import { randomArray } from '../src/kernels/ref/math.js';
import { FMNIST_VIT } from '../src/train/presets.js';
import { VisionTransformer } from '../src/vit/model.js';

export interface BenchTrainOptions {
  runs?: number;
  /** Steps per timed run (default 3). */
  steps?: number;
  batch?: number;
  peers?: boolean;
}

export type BenchTrainResult = {
  op: 'train';
  config: string;
  batch: number;
  images_per_s: number;
  seconds_per_step: number;
  run_images_per_s: number[];
  pytorch_images_per_s?: number;
  adapter: string;
};

const c = FMNIST_VIT;
const CONFIG = `img${c.image_size}/p${c.patch_size}/L${c.num_layers}/H${c.num_heads}/D${c.hidden_dim}/mlp${c.mlp_dim}`;

export async function benchTrain(opts: BenchTrainOptions = {}): Promise<BenchTrainResult> {
  const runs = opts.runs ?? 2;
  const steps = opts.steps ?? 3;
  const B = opts.batch ?? 128;
  await initGpu();
  const model = new VisionTransformer(FMNIST_VIT, { init: 'random', seed: 1 });
  const opt = new AdamW(model.parameters(), { lr: 3e-4, weightDecay: 1e-2 });
  const S = c.image_size;
  const x = randomArray(B * 3 * S * S, 3, -2, 2);
  const y = Float32Array.from({ length: B }, (_, i) => i % c.num_classes);
  const step = () =>
    scope(async () => {
      const logits = model.forward(Tensor.from(x, [B, 3, S, S])).logits;
      const loss = ops.crossEntropy(logits, GpuArray.fromData(y, [B]));
      loss.backward();
      opt.step();
      const l = await loss.item();
      opt.zeroGrad();
      return l;
    });
  try {
    for (let i = 0; i < 2; i++) await step();
    const rates: number[] = [];
    for (let r = 0; r < runs; r++) {
      const t0 = performance.now();
      for (let i = 0; i < steps; i++) await step();
      rates.push((steps * B) / ((performance.now() - t0) / 1000));
    }
    const best = Math.max(...rates);
    const out: BenchTrainResult = {
      op: 'train',
      config: `${CONFIG} b${B}`,
      batch: B,
      images_per_s: best,
      seconds_per_step: B / best,
      run_images_per_s: rates,
      adapter: gpu().adapterKey,
    };
    if (opts.peers) {
      const t = torchTrainPeer(B, runs, steps);
      if (t !== undefined) out.pytorch_images_per_s = t;
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
torch.manual_seed(0)
m = torchvision.models.vision_transformer.VisionTransformer(**cfg)
opt = torch.optim.AdamW(m.parameters(), lr=3e-4, weight_decay=1e-2)
x = torch.randn(B, 3, cfg['image_size'], cfg['image_size'])
y = torch.arange(B) % cfg['num_classes']
f = torch.nn.CrossEntropyLoss()
def step():
    opt.zero_grad()
    l = f(m(x), y)
    l.backward()
    opt.step()
    return l.item()
for _ in range(2): step()
best = 0.0
for _ in range(runs):
    t = time.perf_counter()
    for _ in range(steps): step()
    best = max(best, steps * B / (time.perf_counter() - t))
print(json.dumps({"images_per_s": best, "threads": torch.get_num_threads()}))
`;

/** torchvision + torch.optim.AdamW on the CPU, train images/s (best of runs), or undefined when torch is missing. */
function torchTrainPeer(B: number, runs: number, steps: number): number | undefined {
  const cfg = { ...FMNIST_VIT };
  delete (cfg as { representation_size?: null }).representation_size;
  const py = findTorchPython(['torch', 'torchvision']);
  if (py instanceof Error) return undefined;
  const r = spawnSync(py, ['-c', TORCH_SCRIPT, String(B), String(runs), String(Math.max(steps, 5)), JSON.stringify(cfg)], { encoding: 'utf8', timeout: 600_000 });
  if (r.status === 0) {
    const v = Number(JSON.parse(r.stdout.trim().split('\n').pop()!).images_per_s);
    if (Number.isFinite(v)) return v;
  }
  return undefined;
}
