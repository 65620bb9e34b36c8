// ONNX Runtime as a peer for the ViT forward benchmark (bench/vit.ts): torchvision's vit_b_16 (random weights,
// seeded, 14 classes), exported to ONNX locally by tools/export_vit_onnx.py, run by onnxruntime-node with its
// WebGPU execution provider (its own bundled Dawn; on this machine the only Vulkan driver is lavapipe, the
// adapter our kernels use) and with its CPU execution provider. Warm-up, then the best of `runs`, per image.
//
// onnxruntime-node is deliberately not a dependency (its install script downloads, and it is large): it is
// loaded with a dynamic import, and when it is missing the result's note says how to install it.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findTorchPython } from '../tools/torchPython.js';

export const ORT_INSTALL = 'npm install --no-save --ignore-scripts onnxruntime-node@1.30.0';

export interface OrtVitPeerOptions {
  config: 'vit_b_16';
  batch: number;
  runs: number;
}

export interface OrtVitPeerResult {
  /** Seconds per image, WebGPU execution provider (best of runs after a warm-up). */
  webgpu_s?: number;
  /** Seconds per image, CPU execution provider. */
  cpu_s?: number;
  /** Version, logits check against torchvision, or why a provider was not measured. */
  note?: string;
}

// The few parts of onnxruntime-node's API used here (its types are not available without the package).
interface OrtTensor {
  data: Float32Array;
}
interface OrtSession {
  inputNames: readonly string[];
  outputNames: readonly string[];
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}
interface OrtModule {
  InferenceSession: { create(path: string, options: { executionProviders: string[]; logSeverityLevel?: number }): Promise<OrtSession> };
  Tensor: new (type: 'float32', data: Float32Array, dims: number[]) => OrtTensor;
  listSupportedBackends?: () => { name: string; bundled: boolean }[];
  env?: { versions?: Record<string, string> };
}

async function loadOrt(): Promise<OrtModule | Error> {
  const name = 'onnxruntime-node'; // a variable, so that tsc does not need the package
  try {
    const m = (await import(name)) as OrtModule & { default?: OrtModule };
    return m.InferenceSession ? m : (m.default as OrtModule);
  } catch (e) {
    return new Error(`onnxruntime-node is not installed (${(e as Error).message.split('\n')[0]}); get it with: ${ORT_INSTALL}`);
  }
}

/** Where tools/export_vit_onnx.py writes the model (and its .ref.json with torchvision's logits). */
export function vitOnnxPath(config = 'vit_b_16', numClasses = 14): string {
  return join(process.env.CELLUSCAN_CACHE ?? join(homedir(), '.cache', 'celluscan'), `${config}_${numClasses}.onnx`);
}

/** The exported model, exporting it first (a few seconds with Debian's torch) when it is not cached. */
function ensureOnnx(config: string): { path: string; ref?: number[] } | Error {
  const path = vitOnnxPath(config);
  const refPath = path.replace(/\.onnx$/, '.ref.json');
  if (!existsSync(path) || !existsSync(refPath)) {
    const py = findTorchPython(['torch', 'torchvision']);
    if (py instanceof Error) return new Error(`no ONNX model at ${path}, and it cannot be exported here: ${py.message}`);
    const script = fileURLToPath(new URL('../tools/export_vit_onnx.py', import.meta.url));
    const r = spawnSync(py, [script, '--config', config, '--out', path], { encoding: 'utf8', timeout: 600_000 });
    if (r.status !== 0 || !existsSync(path)) {
      return new Error(`exporting ${config} to ONNX failed (${py} ${script}): ${(r.error?.message ?? r.stderr ?? '').trim().split('\n').pop()}`);
    }
  }
  let ref: number[] | undefined;
  try {
    ref = (JSON.parse(readFileSync(refPath, 'utf8')) as { logits: number[] }).logits;
  } catch {
    // no reference logits: timing only
  }
  return { path, ref };
}

/** ONNX Runtime's forward time per image for torchvision's ViT, WebGPU and CPU execution providers. */
export async function ortVitPeer(opts: OrtVitPeerOptions): Promise<OrtVitPeerResult> {
  const ort = await loadOrt();
  if (ort instanceof Error) return { note: ort.message };
  const model = ensureOnnx(opts.config);
  if (model instanceof Error) return { note: model.message };
  const batch = opts.batch;
  const runs = Math.max(1, opts.runs);
  const S = 224;
  const per = 3 * S * S;
  // The input tools/export_vit_onnx.py used for its reference logits, repeated over the batch.
  const x = new Float32Array(batch * per);
  for (let b = 0; b < batch; b++) for (let i = 0; i < per; i++) x[b * per + i] = Math.sin(0.37 * i);
  const notes: string[] = [`onnxruntime-node ${ort.env?.versions?.node ?? '?'}`];
  const result: OrtVitPeerResult = {};
  for (const ep of ['webgpu', 'cpu'] as const) {
    let session: OrtSession | undefined;
    try {
      // logSeverityLevel 3: errors only (the WebGPU EP warns that shape ops stay on the CPU, which is by design).
      session = await ort.InferenceSession.create(model.path, { executionProviders: [ep], logSeverityLevel: 3 });
      const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', x, [batch, 3, S, S]) };
      const out = session.outputNames[0];
      const first = (await session.run(feeds))[out].data; // warm-up (shaders compiled, buffers allocated)
      let best = Infinity;
      for (let i = 0; i < runs; i++) {
        const t0 = performance.now();
        const o = await session.run(feeds);
        void o[out].data; // on the host: the output is read back
        best = Math.min(best, (performance.now() - t0) / 1000);
      }
      result[ep === 'webgpu' ? 'webgpu_s' : 'cpu_s'] = best / batch;
      if (model.ref && model.ref.length === first.length / batch) {
        let d = 0;
        for (let i = 0; i < model.ref.length; i++) d = Math.max(d, Math.abs(first[i] - model.ref[i]));
        notes.push(`${ep}: logits max |diff| vs torchvision ${d.toExponential(1)}`);
      }
    } catch (e) {
      notes.push(`${ep} not measured: ${(e as Error).message.split('\n')[0]}`);
    } finally {
      await session?.release().catch(() => {});
    }
  }
  result.note = notes.join('; ');
  return result;
}
