// Converting state dicts to torchvision's VisionTransformer names: from Hugging Face ViTForImageClassification,
// timm vit_*_patch*_*, torchvision < 0.13 (mlp.linear_1/linear_2) or torchvision itself; then checking every
// tensor against the shapes the inferred config implies. Pure (browser-safe) except convertFile, which loads the
// Node-only file helpers on demand.
import { expectedShapes, inferConfig, type VitConfig } from './config.js';
import { WeightsError, celluscanMetadata, fmtShape, numel, type TensorData } from './safetensors.js';

export type Layout = 'torchvision' | 'hf' | 'timm';

export interface RenamePlan {
  layout: Layout;
  /** torchvision name → source names, concatenated along dim 0 in this order (q, k, v for HF attention). */
  mapping: Map<string, string[]>;
  /** Source names no rule maps. */
  unknown: string[];
  notes: string[];
}

type Rule = [RegExp, (m: RegExpExecArray) => string];
const L = (i: string) => `encoder.layers.encoder_layer_${i}.`;
const WB = '(weight|bias)';

const HF_RULES: Rule[] = [
  [/^embeddings\.cls_token$/, () => 'class_token'],
  [/^embeddings\.position_embeddings$/, () => 'encoder.pos_embedding'],
  [new RegExp(`^embeddings\\.patch_embeddings\\.projection\\.${WB}$`), (m) => `conv_proj.${m[1]}`],
  [new RegExp(`^encoder\\.layer\\.(\\d+)\\.attention\\.output\\.dense\\.${WB}$`), (m) => `${L(m[1])}self_attention.out_proj.${m[2]}`],
  [new RegExp(`^encoder\\.layer\\.(\\d+)\\.intermediate\\.dense\\.${WB}$`), (m) => `${L(m[1])}mlp.0.${m[2]}`],
  [new RegExp(`^encoder\\.layer\\.(\\d+)\\.output\\.dense\\.${WB}$`), (m) => `${L(m[1])}mlp.3.${m[2]}`],
  [new RegExp(`^encoder\\.layer\\.(\\d+)\\.layernorm_before\\.${WB}$`), (m) => `${L(m[1])}ln_1.${m[2]}`],
  [new RegExp(`^encoder\\.layer\\.(\\d+)\\.layernorm_after\\.${WB}$`), (m) => `${L(m[1])}ln_2.${m[2]}`],
  [new RegExp(`^layernorm\\.${WB}$`), (m) => `encoder.ln.${m[1]}`],
  [new RegExp(`^classifier\\.${WB}$`), (m) => `heads.head.${m[1]}`],
];
const HF_QKV = /^encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(weight|bias)$/;

const TIMM_RULES: Rule[] = [
  [/^cls_token$/, () => 'class_token'],
  [/^pos_embed$/, () => 'encoder.pos_embedding'],
  [new RegExp(`^patch_embed\\.proj\\.${WB}$`), (m) => `conv_proj.${m[1]}`],
  [new RegExp(`^blocks\\.(\\d+)\\.norm1\\.${WB}$`), (m) => `${L(m[1])}ln_1.${m[2]}`],
  [/^blocks\.(\d+)\.attn\.qkv\.weight$/, (m) => `${L(m[1])}self_attention.in_proj_weight`],
  [/^blocks\.(\d+)\.attn\.qkv\.bias$/, (m) => `${L(m[1])}self_attention.in_proj_bias`],
  [new RegExp(`^blocks\\.(\\d+)\\.attn\\.proj\\.${WB}$`), (m) => `${L(m[1])}self_attention.out_proj.${m[2]}`],
  [new RegExp(`^blocks\\.(\\d+)\\.norm2\\.${WB}$`), (m) => `${L(m[1])}ln_2.${m[2]}`],
  [new RegExp(`^blocks\\.(\\d+)\\.mlp\\.fc1\\.${WB}$`), (m) => `${L(m[1])}mlp.0.${m[2]}`],
  [new RegExp(`^blocks\\.(\\d+)\\.mlp\\.fc2\\.${WB}$`), (m) => `${L(m[1])}mlp.3.${m[2]}`],
  [new RegExp(`^norm\\.${WB}$`), (m) => `encoder.ln.${m[1]}`],
  [new RegExp(`^head\\.${WB}$`), (m) => `heads.head.${m[1]}`],
];

/** Which naming a state dict uses, from its key names (after any 'module.' prefix is removed). */
export function detectLayout(names: Iterable<string>): Layout {
  const list = [...names];
  if (list.some((n) => /(^|\.)embeddings\.patch_embeddings\./.test(n))) return 'hf';
  if (list.some((n) => /^patch_embed\.proj\./.test(n) || /^blocks\.\d+\.attn\.qkv\./.test(n))) return 'timm';
  if (list.some((n) => n === 'conv_proj.weight' || n.startsWith('encoder.layers.encoder_layer_'))) return 'torchvision';
  throw new WeightsError(
    `cannot tell which ViT layout this state dict uses (torchvision, Hugging Face or timm); first keys: ${list.slice(0, 8).join(', ') || '(none)'}`,
  );
}

/** Removes a prefix every key shares from wrappers (DataParallel's 'module.', torch.compile's '_orig_mod.'). */
function stripWrapperPrefix(names: string[], notes: string[]): Map<string, string> {
  const out = new Map(names.map((n) => [n, n]));
  for (const p of ['module.', '_orig_mod.']) {
    const cur = [...out.values()];
    if (cur.length && cur.every((n) => n.startsWith(p))) {
      for (const [k, v] of out) out.set(k, v.slice(p.length));
      notes.push(`removed the '${p}' prefix every key had`);
    }
  }
  return out;
}

/** Maps source names to torchvision names. HF query/key/value map to one in_proj tensor (3 sources). */
export function renameToTorchvision(names: Iterable<string>): RenamePlan {
  const notes: string[] = [];
  const src = [...names];
  const stripped = stripWrapperPrefix(src, notes);
  const layout = detectLayout(stripped.values());
  const mapping = new Map<string, string[]>();
  const unknown: string[] = [];
  const add = (target: string, source: string) => {
    if (mapping.has(target)) throw new WeightsError(`both '${mapping.get(target)![0]}' and '${source}' map to '${target}'`);
    mapping.set(target, [source]);
  };
  if (layout === 'torchvision') {
    let old = false;
    for (const s of src) {
      const n = stripped.get(s)!;
      const m = /^(encoder\.layers\.encoder_layer_\d+\.mlp\.)linear_([12])\.(weight|bias)$/.exec(n);
      if (m) {
        old = true;
        add(`${m[1]}${m[2] === '1' ? '0' : '3'}.${m[3]}`, s);
      } else add(n, s);
    }
    if (old) notes.push('renamed torchvision < 0.13 MLP names (mlp.linear_1/linear_2 → mlp.0/mlp.3)');
    return { layout, mapping, unknown, notes };
  }
  if (layout === 'hf') {
    const qkv = new Map<string, Partial<Record<'query' | 'key' | 'value', string>>>();
    for (const s of src) {
      const n = stripped.get(s)!.replace(/^vit\./, '');
      const q = HF_QKV.exec(n);
      if (q) {
        const target = `${L(q[1])}self_attention.in_proj_${q[3]}`;
        const parts = qkv.get(target) ?? {};
        parts[q[2] as 'query' | 'key' | 'value'] = s;
        qkv.set(target, parts);
        continue;
      }
      const rule = HF_RULES.find(([re]) => re.test(n));
      if (rule) add(rule[1](rule[0].exec(n)!), s);
      else unknown.push(s);
    }
    for (const [target, parts] of qkv) {
      const miss = (['query', 'key', 'value'] as const).filter((p) => !parts[p]);
      if (miss.length) {
        const have = Object.values(parts)[0]!;
        throw new WeightsError(`'${have}' has no matching ${miss.join('/')} tensor${miss.length > 1 ? 's' : ''}: cannot build '${target}'`);
      }
      mapping.set(target, [parts.query!, parts.key!, parts.value!]);
    }
    notes.push('renamed Hugging Face ViT names to torchvision\'s (query/key/value concatenated into in_proj)');
    return { layout, mapping, unknown, notes };
  }
  for (const s of src) {
    const n = stripped.get(s)!;
    const rule = TIMM_RULES.find(([re]) => re.test(n));
    if (rule) add(rule[1](rule[0].exec(n)!), s);
    else unknown.push(s);
  }
  notes.push("renamed timm ViT names to torchvision's");
  return { layout, mapping, unknown, notes };
}

export interface ConvertOptions {
  /** Attention heads (cannot be read from the weights). */
  numHeads?: number;
  /** Class names, one per output of heads.head. */
  labels?: string[];
  /** Per-channel input normalisation (RGB). */
  mean?: number[];
  std?: number[];
}

export interface ConvertResult {
  /** torchvision names, in state_dict order. */
  tensors: Map<string, TensorData>;
  config: VitConfig;
  layout: Layout;
  notes: string[];
  /** safetensors metadata for a CelluScan file. */
  metadata: Record<string, string>;
}

function concat0(parts: TensorData[], names: string[], target: string): TensorData {
  const tail = fmtShape(parts[0].shape.slice(1));
  for (let i = 1; i < parts.length; i++) {
    if (parts[i].shape.length !== parts[0].shape.length || fmtShape(parts[i].shape.slice(1)) !== tail) {
      throw new WeightsError(`cannot build '${target}': '${names[0]}' is ${fmtShape(parts[0].shape)} but '${names[i]}' is ${fmtShape(parts[i].shape)}`);
    }
  }
  const data = new Float32Array(parts.reduce((a, p) => a + p.data.length, 0));
  let o = 0;
  for (const p of parts) {
    data.set(p.data, o);
    o += p.data.length;
  }
  return { shape: [parts.reduce((a, p) => a + p.shape[0], 0), ...parts[0].shape.slice(1)], data };
}

/**
 * Renames a state dict to torchvision's names, infers the config, and checks every tensor against
 * expectedShapes(config). Unknown, missing and mis-shaped tensors are all reported in one WeightsError.
 */
export function convertStateDict(tensors: Map<string, TensorData & { dtype?: string }>, opts: ConvertOptions = {}): ConvertResult {
  const plan = renameToTorchvision(tensors.keys());
  const notes = [...plan.notes];
  const renamed = new Map<string, TensorData>();
  const sourceOf = new Map<string, string>();
  for (const [target, sources] of plan.mapping) {
    const parts = sources.map((s) => tensors.get(s)!);
    for (let i = 0; i < parts.length; i++) {
      if (numel(parts[i].shape) !== parts[i].data.length) {
        throw new WeightsError(`tensor '${sources[i]}': shape ${fmtShape(parts[i].shape)} does not match its ${parts[i].data.length} values`);
      }
    }
    renamed.set(target, parts.length === 1 ? { shape: [...parts[0].shape], data: parts[0].data } : concat0(parts, sources, target));
    sourceOf.set(target, sources.join(' + '));
  }
  const dtypes = new Set([...tensors.values()].map((t) => t.dtype).filter((d) => d && d !== 'F32'));
  if (dtypes.size) notes.push(`converted ${[...dtypes].join('/')} tensors to F32`);

  const shapes = new Map([...renamed].map(([k, v]) => [k, v.shape]));
  let inferred;
  try {
    inferred = inferConfig(shapes, opts.numHeads);
  } catch (e) {
    if (e instanceof WeightsError && plan.unknown.length) {
      throw new WeightsError(`${e.message} (unrecognised ${plan.layout} tensors: ${plan.unknown.join(', ')})`);
    }
    throw e;
  }
  const { config } = inferred;
  notes.push(...inferred.notes);

  const expected = expectedShapes(config);
  const problems: string[] = [];
  const from = (t: string) => (sourceOf.get(t) !== t ? ` (from '${sourceOf.get(t)}')` : '');
  for (const s of plan.unknown) problems.push(`unknown tensor '${s}' ${fmtShape(tensors.get(s)!.shape)}`);
  for (const [t, v] of renamed) {
    const want = expected.get(t);
    if (!want) problems.push(`unknown tensor '${t}'${from(t)} ${fmtShape(v.shape)}`);
    else if (fmtShape(want) !== fmtShape(v.shape)) problems.push(`'${t}'${from(t)}: expected ${fmtShape(want)}, got ${fmtShape(v.shape)}`);
  }
  for (const [t, want] of expected) if (!renamed.has(t)) problems.push(`missing tensor '${t}' (expected ${fmtShape(want)})`);
  if (problems.length) {
    throw new WeightsError(
      `the ${plan.layout} state dict does not match a torchvision ViT (${config.num_layers} layers, hidden ${config.hidden_dim}, mlp ${config.mlp_dim}, ` +
        `${config.num_classes} classes, image ${config.image_size}/${config.patch_size}): ${problems.length} problem${problems.length > 1 ? 's' : ''}:\n  ` +
        problems.join('\n  '),
    );
  }
  const out = new Map<string, TensorData>();
  for (const t of expected.keys()) out.set(t, renamed.get(t)!);
  const metadata = celluscanMetadata({ config, labels: opts.labels, mean: opts.mean, std: opts.std });
  return { tensors: out, config, layout: plan.layout, notes, metadata };
}

/**
 * Node only: converts a .pth/.pt (zip) or .safetensors file to a CelluScan safetensors file, written
 * atomically. (Implemented in weightsFile.node.ts, loaded on demand so this module stays browser-safe.)
 */
export async function convertFile(
  inPath: string,
  outPath: string,
  opts: ConvertOptions = {},
): Promise<{ config: VitConfig; layout: Layout; notes: string[]; tensorCount: number; bytes: number }> {
  const m = await import('./weightsFile.node.js');
  return m.convertFile(inPath, outPath, opts);
}
