// `celluscan tune`: measure, on this adapter, which matmul variant and which attention path (explicit, or a fused
// variant) are fastest for a model's shapes, and cache the choices; every later command loads them when it starts the
// GPU (loadTunings, registered from main.ts). Registered from main.ts with register(program).
import { Command, Option } from 'commander';
import { readFile } from 'node:fs/promises';
import { intArg, output, table, UsageError } from './util.js';
import type { VitConfig } from '../vit/config.js';

/** The tuning cache files loadTunings has already warned about (once per process: it runs at every GPU start). */
const warnedCaches = new Set<string>();

/** Cached tuning is loaded unless CELLUSCAN_TUNING=off (the test suite sets it, so its runs do not depend on a cache). */
export async function loadTunings(): Promise<void> {
  if (process.env.CELLUSCAN_TUNING === 'off') return;
  const { loadMatmulTuning, tuningCachePath, tuningCacheReadProblem } = await import('../kernels/autotune.js');
  const { loadAttentionTuning } = await import('../vit/attentionTuning.js');
  const { loadRowTuning } = await import('../kernels/rowTuning.js');
  const { isRowVariant } = await import('../kernels/softmax.js');
  // A cache that cannot be used (unreadable, corrupt, not a tuning cache) must not stop a command: the table's choices
  // stand, and one line (once per file and process) says why. A missing cache is said nothing of.
  for (const [file, load] of [
    ['matmul-autotune.json', loadMatmulTuning],
    ['attention-autotune.json', loadAttentionTuning],
    ['rows-autotune.json', () => loadRowTuning(isRowVariant)],
  ] as const) {
    let problem: string | undefined;
    try {
      await load();
      problem = tuningCacheReadProblem(file);
    } catch (e) {
      problem = (e as Error).message;
    }
    if (problem === undefined) continue;
    const path = (await tuningCachePath(file)) ?? file;
    if (warnedCaches.has(path)) continue;
    warnedCaches.add(path);
    console.error(`celluscan: warning: ignoring the tuning cache ${path} (${problem}); re-measure with \`celluscan tune --force\`, or set CELLUSCAN_TUNING=off`);
  }
}

/** A model for --model: a training preset, 'fmnist', a ViT preset, a .json VitConfig or a .safetensors model. */
async function resolveModel(name: string): Promise<{ config: VitConfig; label: string; batch: number; classToken?: boolean }> {
  const { TRAIN_PRESETS } = await import('../train/presets.js');
  const { VIT_PRESETS, vitPreset } = await import('../vit/config.js');
  const p = TRAIN_PRESETS[name];
  if (p) {
    const model = p.options.model;
    const config = p.options.config ?? (model && model in VIT_PRESETS ? vitPreset(model as keyof typeof VIT_PRESETS, { num_classes: 14 }) : undefined);
    if (!config) throw new UsageError(`tune: the preset '${name}' names no model`);
    return { config, label: `preset ${name}`, batch: p.options.batchSize ?? 32 };
  }
  // (.pth/.pt too, to be told as predict tells it: convert it first)
  if (/\.(safetensors|pth|pt)$/.test(name)) {
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await readFile(name));
    } catch (e) {
      throw new UsageError(`tune: cannot read ${name}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
    }
    const { parseSafetensorsFile, readCelluscanMetadata } = await import('../vit/safetensors.js');
    const { inferConfig } = await import('../vit/config.js');
    let file;
    try {
      file = parseSafetensorsFile(bytes, name);
    } catch (e) {
      throw new UsageError(`tune: ${(e as Error).message}`);
    }
    const config = readCelluscanMetadata(file.metadata).config ?? inferConfig(new Map([...file.tensors].map(([k, t]) => [k, t.shape]))).config;
    // A from-scratch model saved without a class token attends over the patches alone.
    return { config, label: name, batch: 8, classToken: file.tensors.has('class_token') };
  }
  // 'fmnist', a ViT preset or a .json config: as `bench train` and `bench profile` read them.
  const { benchModel } = await import('../../bench/train.js');
  try {
    return benchModel(name, 'tune', `, a training preset (${Object.keys(TRAIN_PRESETS).join(', ')}), a .safetensors model`);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

export function register(program: Command): void {
  program
    .command('tune')
    .description(
      "measure which matmul variant, attention path and row-kernel variant (softmax, layernorm) are fastest on this adapter for a model's shapes, and cache the choices (every later command uses them)",
    )
    .option(
      '--model <name>',
      "a training preset (fashion-mnist: the patch-4 model, 50 tokens; celluscan, …), 'fmnist' (the patch-7 model of fashion-mnist-quick / -p7, 17 tokens), a ViT preset (vit_b_16, …), a .json config or a .safetensors model",
      'fashion-mnist',
    )
    .option('--batch <n>', "images per step the attention is timed at (default: the preset's batch; 32 for ViT presets, 8 for a .safetensors model)", intArg('--batch'))
    .addOption(new Option('--only <what>', 'tune only one of them').choices(['matmul', 'attention', 'rows']))
    .addOption(new Option('--mode <mode>', "what is timed: 'train' (attention forward+backward; the linear layer's three matmul products), 'infer' (forward only) or both (matmul as for train)").choices(['train', 'infer', 'both']).default('both'))
    .option('--attention-variants <names>', "comma-separated attention candidates: 'explicit' and fused variants with @ blockings (default: the adapter's)")
    .option('--runs <n>', 'timed runs per candidate after a warm-up run', intArg('--runs'), 3)
    .option('--force', 'measure again even where a cached result exists')
    .option('--json', 'one JSON object')
    .action(async (o) => {
      if (o.attentionVariants !== undefined && o.only !== undefined && o.only !== 'attention') {
        throw new UsageError(`tune: --attention-variants ${o.attentionVariants} contradicts --only ${o.only} (attention is not tuned): drop one of them`);
      }
      const model = await resolveModel(o.model);
      const c = model.config;
      const { initGpu } = await import('../kernels/device.js');
      const g = await initGpu();
      const { autotuneMatmul, describeMatmulChoice, linearProducts, tuningCachePath } = await import('../kernels/autotune.js');
      const { autotuneAttention, describeAttentionChoice } = await import('../vit/attentionTuning.js');
      const N = (c.image_size / c.patch_size) ** 2 + (model.classToken === false ? 0 : 1);
      const D = c.hidden_dim / c.num_heads;
      // The batch the model runs at: the ranking changes with it, even on a CPU adapter (lavapipe, fashion-mnist
      // model, N 50 D 16: fused 1.5× faster at batch 8, explicit 1.2× faster at batch 128).
      const batch = o.batch ?? model.batch;
      const say = o.json ? () => {} : (s: string) => console.log(s);
      say(`adapter ${g.adapterKey} (${g.info.description}); model ${model.label}: attention B${batch} H${c.num_heads} N${N} D${D}`);
      const result: Record<string, unknown> = { adapter: g.adapterKey, description: g.info.description, model: model.label };
      const lines: string[][] = [];
      if (o.only === undefined || o.only === 'matmul') {
        say('matmul: timing the variants …');
        // The model's largest linear layer (MLP up, hidden → mlp) at the batch it runs at, in the forms it runs:
        // forward x·Wᵀ, and for training also dX = dY·W and dW = dYᵀ·X (one variant, and another for a form that runs
        // faster with it). On GPUs also the MLP's second forward (mlp → hidden), whose narrow output is few workgroups
        // for a GPU (vit_b_16 at batch 32: 300 of 128×128, 18–19 TFLOP/s on an H200 against 30 for the first): the
        // x·Wᵀ form is then decided on both, so a split-K that only the narrow one needs can win it.
        const { isSoftwareAdapter } = await import('../kernels/device.js');
        const products = [
          ...linearProducts(batch * N, c.hidden_dim, c.mlp_dim, o.mode !== 'infer'),
          ...(isSoftwareAdapter() ? [] : [{ m: batch * N, n: c.hidden_dim, k: c.mlp_dim, transB: true }]),
        ];
        const m = await autotuneMatmul({ products, force: o.force, runs: o.runs, onCandidate: (v, ms, note) => say(`  ${v}: ${Number.isFinite(ms) ? `${ms.toFixed(2)} ms${note ? ` (${note})` : ''}` : note}`) });
        result.matmul = m;
        const t = Object.entries(m.timings).sort((a, b) => a[1] - b[1]);
        const clock = m.clock === 'timestamp-query' ? ' (GPU time)' : '';
        lines.push(['matmul', (m.products ?? [m.shape.join('×')]).join(' + '), describeMatmulChoice(g.adapterKey), m.fromCache ? 'cached' : t.map(([k, v]) => `${k} ${Number.isFinite(v) ? v.toFixed(2) + ' ms' : 'failed check'}`).join(', ') + clock]);
      }
      if (o.only === undefined || o.only === 'attention') {
        const candidates = o.attentionVariants ? String(o.attentionVariants).split(',').map((s: string) => s.trim()).filter(Boolean) : undefined;
        const modes = o.mode === 'both' ? (['train', 'infer'] as const) : ([o.mode] as const);
        const att = [];
        for (const mode of modes) {
          say(`attention (${mode}): timing the candidates …`);
          let r;
          try {
            r = await autotuneAttention({
              batch,
              heads: c.num_heads,
              seq: N,
              dim: D,
              mode,
              candidates,
              runs: o.runs,
              force: o.force,
              onCandidate: (v, ms, note) => say(`  ${v}: ${ms === undefined ? `failed: ${note}` : `${ms.toFixed(1)} ms`}`),
            });
          } catch (e) {
            if (e instanceof RangeError) throw new UsageError(`tune: ${e.message}`);
            throw e;
          }
          att.push(r);
          const t = Object.entries(r.timings).sort((a, b) => a[1] - b[1]);
          const failed = Object.entries(r.failed).map(([k, v]) => `${k} failed: ${v}`);
          lines.push([
            `attention ${mode}`,
            `B${r.batch} H${r.heads} ${r.shape.split(' ').slice(0, 2).join(' ')}`,
            describeAttentionChoice({ ...r.choice, source: 'default' }),
            r.fromCache ? 'cached' : [...t.map(([k, v]) => `${k} ${v.toFixed(1)} ms`), ...failed].join(', '),
          ]);
        }
        result.attention = att;
      }
      if (o.only === undefined || o.only === 'rows') {
        // softmax over the attention scores (the explicit path's; [B·H·N, N]) and layernorm over the tokens ([B·N, D]),
        // forward + backward unless --mode infer.
        const { autotuneRows } = await import('../../bench/rows.js');
        const rowsMode = o.mode === 'infer' ? 'infer' : 'train';
        const rowResults = [];
        for (const [kernel, rows, cols] of [['softmax', batch * c.num_heads * N, N], ['layernorm', batch * N, c.hidden_dim]] as const) {
          say(`${kernel} ${rows}×${cols} (${rowsMode}): timing the row variants …`);
          const r = await autotuneRows({ kernel, rows, cols, mode: rowsMode, runs: o.runs, force: o.force });
          rowResults.push(r);
          const t = Object.entries(r.timings).sort((a, b) => a[1] - b[1]);
          const clock = r.clock.startsWith('timestamp') ? ' (GPU time)' : '';
          lines.push([
            `${kernel} ${rowsMode}`,
            `${rows}×${cols}`,
            r.choice === 'library' ? `${r.library} (default)` : r.choice,
            r.fromCache ? 'cached' : [...t.map(([k, v]) => `${k === 'library' ? `${r.library} (default)` : k} ${v.toFixed(3)} ms`), ...Object.entries(r.failed).map(([k, v]) => `${k} failed: ${v}`)].join(', ') + clock,
          ]);
        }
        result.rows = rowResults;
      }
      const files = [
        o.only === undefined || o.only === 'matmul' ? 'matmul-autotune.json' : undefined,
        o.only === undefined || o.only === 'attention' ? 'attention-autotune.json' : undefined,
        o.only === undefined || o.only === 'rows' ? 'rows-autotune.json' : undefined,
      ].filter((f): f is string => f !== undefined);
      // A cache file that could not be written (a read-only home, a cache folder that is a file): its choices hold for
      // this run only, and neither the text nor --json's `files` may say it was cached.
      const { tuningCacheWriteErrors } = await import('../kernels/autotune.js');
      const cached: string[] = [];
      const failures: string[] = [];
      for (const f of files) {
        const path = (await tuningCachePath(f)) ?? f;
        const why = tuningCacheWriteErrors().get(f);
        if (why === undefined) cached.push(path);
        else {
          failures.push(`${path} (${why})`);
          console.error(`celluscan: warning: cannot write the tuning cache ${path} (${why}); its choices apply to this run only`);
        }
      }
      result.files = cached;
      if (failures.length) result.cacheError = `cannot write ${failures.join('; ')}`;
      const where = [cached.length ? `cached in ${cached.join(', ')} (re-measure with --force)` : '', failures.length ? `not cached: could not write ${failures.join('; ')}` : '']
        .filter(Boolean)
        .join('\n');
      output(o.json, result, () => `${table(lines, ['what', 'shape', 'choice', 'timings (ms per call: wall clock, or GPU time where marked)'])}\n${where}`);
    });
}
