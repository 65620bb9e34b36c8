// ViT forward time per image on the adapter: a preset config (vit_b_16 with 14 classes by default) with random
// weights, one warm-up pass (pipelines compiled, buffers pooled), then the best of `runs` timed passes, each
// from host input to logits read back. Optional peer: torchvision's same model on the CPU (PyTorch, eval mode).
import { markTimedEnd, warmClocks } from '../src/kernels/clocks.js';
import { spawnSync } from 'node:child_process';
import { findTorchPython } from '../tools/torchPython.js';
import { fileURLToPath } from 'node:url';
import { gpu, initGpu, isSoftwareAdapter } from '../src/kernels/device.js';
import { randomArray } from '../src/kernels/ref/math.js';
import { VIT_PRESETS, vitPreset, type VitPresetName } from '../src/vit/config.js';
import { VisionTransformer } from '../src/vit/model.js';
import { describeAttentionChoice } from '../src/vit/attentionTuning.js';
import { describeMatmulChoice, matmulChoice, restoreMatmulChoice, setMatmulVariant } from '../src/kernels/autotune.js';
import { parseMatmulVariant } from '../src/kernels/matmul.js';

export interface BenchVitOptions {
  batch?: number;
  /** A preset name (default vit_b_16). */
  config?: string;
  runs?: number;
  attention?: 'fused' | 'explicit';
  /** Also time torchvision on the CPU through python3 (skipped quietly when torch is missing), and ONNX Runtime
   *  (WebGPU and CPU execution providers, vit_b_16 only; bench/ortPeer.ts). */
  peers?: boolean;
  /**
   * Time the forward once per matmul choice, in alternating rounds, logits checked against the first's: a variant name
   * runs every product (all transpose forms) with that variant; LIBRARY_MATMUL is the library's own choice per form
   * (the table's or a tune's). The result's seconds_per_image is the first choice's (the first that ran, if it failed).
   */
  matmul?: string[];
}

/** In BenchVitOptions.matmul: the library's own matmul choice, per transpose form, with nothing overridden. */
export const LIBRARY_MATMUL = 'library';

// A type alias (not an interface) so it is assignable to Record<string, unknown> (bench/suite.ts).
export type BenchVitResult = {
  op: 'vit_forward';
  config: string;
  batch: number;
  attention: string;
  runs: number;
  seconds_per_image: number;
  /** Seconds of each timed run (whole batch). */
  run_seconds: number[];
  adapter: string;
  peers?: Record<string, number | string>;
  /** With `matmul`: one row per choice, best of the rounds, and the logits' largest difference from the first's. */
  matmul_rows?: { matmul: string; describes: string; seconds_per_image: number; vs_first: number; logits_max_diff: number; failed?: string }[];
};

export async function benchVit(opts: BenchVitOptions = {}): Promise<BenchVitResult> {
  const name = opts.config ?? 'vit_b_16';
  if (!(name in VIT_PRESETS)) throw new RangeError(`bench vit: unknown config '${name}' (known: ${Object.keys(VIT_PRESETS).join(', ')})`);
  const batch = opts.batch ?? 1;
  const runs = opts.runs ?? 3;
  const choices = opts.matmul?.length ? opts.matmul : [LIBRARY_MATMUL];
  for (const c of choices) if (c !== LIBRARY_MATMUL) parseMatmulVariant(c); // a bad name fails before any work
  await initGpu();
  const config = vitPreset(name as VitPresetName, { num_classes: 14 });
  const model = new VisionTransformer(config, { init: 'random', seed: 1 }).eval();
  // Named, or the adapter's choice for this shape (the table, or a tuned choice: `celluscan tune`).
  const attention = opts.attention;
  const attentionUsed = attention ?? describeAttentionChoice(model.attentionChoice('infer'));
  const S = config.image_size;
  const input = randomArray(batch * 3 * S * S, 7, -2, 2);
  const key = gpu().adapterKey;
  const saved = matmulChoice(key);
  const use = (c: string) => {
    if (c === LIBRARY_MATMUL) restoreMatmulChoice(key, saved);
    else setMatmulVariant(key, c);
  };
  try {
    // warm-up of each choice (its pipelines compiled), its logits against the first's; with several choices one that
    // fails (an error, non-finite or differing logits) is a row saying why, and the others are still timed
    let first: { c: string; logits: Float32Array } | undefined;
    const diffs: number[] = [];
    const describes: string[] = [];
    const failed: (string | undefined)[] = [];
    for (const c of choices) {
      use(c);
      describes.push(describeMatmulChoice(key));
      let why: string | undefined;
      let d = NaN;
      try {
        const logits = await model.predictLogits(input, batch, { attention });
        if (!logits.every(Number.isFinite)) why = 'the logits are not finite';
        else if (!first) {
          first = { c, logits };
          d = 0;
        } else {
          d = 0;
          for (let i = 0; i < logits.length; i++) d = Math.max(d, Math.abs(logits[i] - first.logits[i]));
          // logits O(1) from f32 sums of ≤ 3072 terms per layer: kernels that group the sums differently agree to ~1e-5
          if (!(d <= 1e-3)) why = `logits differ from ${first.c}'s by ${d.toExponential(1)} (> 1e-3)`;
        }
      } catch (e) {
        why = (e as Error).message;
      }
      if (why && choices.length === 1) throw new Error(`bench vit: ${why}`);
      diffs.push(d);
      failed.push(why);
    }
    const ok = choices.map((_, j) => !failed[j]);
    const j0 = ok.indexOf(true);
    if (j0 < 0) throw new Error(`bench vit: every matmul choice failed: ${choices.map((c, j) => `${c}: ${failed[j]}`).join('; ')}`);
    // on a hardware GPU, forwards until its clocks are up (src/kernels/clocks.ts: the warm-ups above compiled)
    use(choices[j0]);
    await warmClocks(() => model.predictLogits(input, batch, { attention }), -Infinity);
    // alternating rounds: drift on a noisy machine falls on every choice alike
    const all = choices.map(() => [] as number[]);
    for (let i = 0; i < runs; i++) {
      for (const [j, c] of choices.entries()) {
        if (!ok[j]) continue;
        use(c);
        const t0 = performance.now();
        await model.predictLogits(input, batch, { attention });
        all[j].push((performance.now() - t0) / 1000);
      }
    }
    markTimedEnd();
    const times = all[j0];
    const best = Math.min(...times);
    const r: BenchVitResult = {
      op: 'vit_forward',
      config: name,
      batch,
      attention: attentionUsed,
      runs,
      seconds_per_image: best / batch,
      run_seconds: times,
      adapter: gpu().adapterKey,
      ...(opts.matmul?.length
        ? {
            matmul_rows: choices.map((c, j) =>
              ok[j]
                ? { matmul: c, describes: describes[j], seconds_per_image: Math.min(...all[j]) / batch, vs_first: best / Math.min(...all[j]), logits_max_diff: diffs[j] }
                : { matmul: c, describes: describes[j], seconds_per_image: NaN, vs_first: NaN, logits_max_diff: diffs[j], failed: failed[j] },
            ),
          }
        : {}),
    };
    restoreMatmulChoice(key, saved);
    if (opts.peers) {
      const peers: Record<string, number | string> = {};
      // On a GPU adapter the peer is PyTorch on CUDA (fp32, TF32 off) when torch sees a GPU; else PyTorch on the CPU.
      const t = torchPeer(name, batch, runs, isSoftwareAdapter() ? 'cpu' : 'auto');
      if (t !== undefined) peers[`PyTorch ${t.device} (torchvision)`] = t.seconds;
      if (name === 'vit_b_16') {
        // ONNX Runtime (WebGPU and CPU execution providers) on torchvision's model exported to ONNX; a note
        // says how to install onnxruntime-node when it is missing (it is not a dependency).
        const { ortVitPeer } = await import('./ortPeer.js');
        const o = await ortVitPeer({ config: name, batch, runs });
        if (o.webgpu_s !== undefined) peers.onnxruntime_webgpu_s = o.webgpu_s;
        if (o.cpu_s !== undefined) peers.onnxruntime_cpu_s = o.cpu_s;
        if (o.note) peers.onnxruntime_note = o.note;
      }
      if (Object.keys(peers).length) r.peers = peers;
    }
    return r;
  } finally {
    restoreMatmulChoice(key, saved);
    model.dispose();
  }
}


/** torchvision's forward (CPU, or CUDA when asked and present): seconds per image, best of runs; undefined when torch is missing. */
function torchPeer(name: string, batch: number, runs: number, device: 'cpu' | 'auto'): { seconds: number; device: string } | undefined {
  const script = fileURLToPath(new URL('../tools/torch_bench_vit.py', import.meta.url));
  const py = findTorchPython(['torch', 'torchvision']);
  if (py instanceof Error) return undefined;
  const r = spawnSync(py, [script, '--config', name, '--batch', String(batch), '--runs', String(runs), '--device', device], { encoding: 'utf8', timeout: 600_000 });
  if (r.status === 0) {
    const j = JSON.parse(r.stdout.trim().split('\n').pop()!) as { seconds_per_image: number; device?: string };
    if (Number.isFinite(j.seconds_per_image)) return { seconds: j.seconds_per_image, device: j.device ?? 'CPU' };
  }
  return undefined;
}
