// ViT configuration: torchvision's VisionTransformer argument names, presets, inference of a config from a
// state_dict's tensor shapes, and the full list of state_dict keys/shapes a config implies.
// Pure (no Node imports): used by the browser too.
import { WeightsError } from './safetensors.js';

/** torchvision.models.vision_transformer.VisionTransformer's constructor arguments (same names). */
export interface VitConfig {
  image_size: number;
  patch_size: number;
  num_layers: number;
  num_heads: number;
  hidden_dim: number;
  mlp_dim: number;
  num_classes: number;
  dropout: number;
  attention_dropout: number;
  /** torchvision's optional pre-logits layer; CelluScan supports only none. */
  representation_size?: null;
}

function preset(
  image_size: number,
  patch_size: number,
  num_layers: number,
  num_heads: number,
  hidden_dim: number,
  mlp_dim: number,
): VitConfig {
  return {
    image_size,
    patch_size,
    num_layers,
    num_heads,
    hidden_dim,
    mlp_dim,
    num_classes: 1000,
    dropout: 0,
    attention_dropout: 0,
    representation_size: null,
  };
}

/** Standard sizes (ImageNet's 1000 classes by default: override num_classes). */
export const VIT_PRESETS = {
  vit_ti_16: preset(224, 16, 12, 3, 192, 768),
  vit_s_16: preset(224, 16, 12, 6, 384, 1536),
  vit_b_16: preset(224, 16, 12, 12, 768, 3072),
  vit_b_32: preset(224, 32, 12, 12, 768, 3072),
  vit_l_16: preset(224, 16, 24, 16, 1024, 4096),
  vit_l_32: preset(224, 32, 24, 16, 1024, 4096),
  vit_h_14: preset(224, 14, 32, 16, 1280, 5120),
} as const satisfies Record<string, VitConfig>;

export type VitPresetName = keyof typeof VIT_PRESETS;

/** A copy of a preset, with overrides (e.g. `{ num_classes: 8 }`). */
export function vitPreset(name: VitPresetName, overrides: Partial<VitConfig> = {}): VitConfig {
  const p = VIT_PRESETS[name];
  if (!p) throw new WeightsError(`unknown ViT preset '${String(name)}' (known: ${Object.keys(VIT_PRESETS).join(', ')})`);
  const c: VitConfig = { ...p, ...overrides };
  validateConfig(c);
  return c;
}

const isPosInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;

/** Throws a WeightsError naming every problem with a config. */
export function validateConfig(c: VitConfig): void {
  const problems: string[] = [];
  if (c === null || typeof c !== 'object') throw new WeightsError(`ViT config must be an object, got ${String(c)}`);
  for (const k of ['image_size', 'patch_size', 'num_layers', 'num_heads', 'hidden_dim', 'mlp_dim', 'num_classes'] as const) {
    if (!isPosInt(c[k])) problems.push(`${k} must be a positive integer, got ${JSON.stringify(c[k])}`);
  }
  for (const k of ['dropout', 'attention_dropout'] as const) {
    const v = c[k];
    if (typeof v !== 'number' || !(v >= 0 && v < 1)) problems.push(`${k} must be a number in [0, 1), got ${JSON.stringify(v)}`);
  }
  if (c.representation_size !== undefined && c.representation_size !== null) {
    problems.push(`representation_size (a pre-logits layer) is not supported, got ${JSON.stringify(c.representation_size)}`);
  }
  if (isPosInt(c.hidden_dim) && isPosInt(c.num_heads) && c.hidden_dim % c.num_heads !== 0) {
    problems.push(`hidden_dim ${c.hidden_dim} is not divisible by num_heads ${c.num_heads}`);
  }
  if (isPosInt(c.image_size) && isPosInt(c.patch_size) && c.image_size % c.patch_size !== 0) {
    problems.push(`image_size ${c.image_size} is not divisible by patch_size ${c.patch_size}`);
  }
  if (problems.length) throw new WeightsError(`invalid ViT config: ${problems.join('; ')}`);
}

/** Sequence length: patches plus the class token. */
export function seqLength(c: VitConfig): number {
  return (c.image_size / c.patch_size) ** 2 + 1;
}

/**
 * Every key of torchvision's `VisionTransformer(config).state_dict()`, in its order, with its shape.
 * (torchvision ≥ 0.13 names: `mlp.0` / `mlp.3`.)
 */
export function expectedShapes(c: VitConfig): Map<string, number[]> {
  validateConfig(c);
  const D = c.hidden_dim;
  const m = new Map<string, number[]>();
  m.set('class_token', [1, 1, D]);
  m.set('conv_proj.weight', [D, 3, c.patch_size, c.patch_size]);
  m.set('conv_proj.bias', [D]);
  m.set('encoder.pos_embedding', [1, seqLength(c), D]);
  for (let i = 0; i < c.num_layers; i++) {
    const p = `encoder.layers.encoder_layer_${i}.`;
    m.set(p + 'ln_1.weight', [D]);
    m.set(p + 'ln_1.bias', [D]);
    m.set(p + 'self_attention.in_proj_weight', [3 * D, D]);
    m.set(p + 'self_attention.in_proj_bias', [3 * D]);
    m.set(p + 'self_attention.out_proj.weight', [D, D]);
    m.set(p + 'self_attention.out_proj.bias', [D]);
    m.set(p + 'ln_2.weight', [D]);
    m.set(p + 'ln_2.bias', [D]);
    m.set(p + 'mlp.0.weight', [c.mlp_dim, D]);
    m.set(p + 'mlp.0.bias', [c.mlp_dim]);
    m.set(p + 'mlp.3.weight', [D, c.mlp_dim]);
    m.set(p + 'mlp.3.bias', [D]);
  }
  m.set('encoder.ln.weight', [D]);
  m.set('encoder.ln.bias', [D]);
  m.set('heads.head.weight', [c.num_classes, D]);
  m.set('heads.head.bias', [c.num_classes]);
  return m;
}

const fmt = (s: readonly number[] | undefined) => (s ? `[${s.join(', ')}]` : '(absent)');

/**
 * Infers a config from torchvision-named shapes (mlp.0/mlp.3 or the pre-0.13 mlp.linear_1/linear_2).
 * The number of heads cannot be read from the weights: pass it, or it is taken from a preset whose sizes match,
 * or hidden_dim / 64 (as every standard ViT); each guess is reported in `notes`.
 */
export function inferConfig(shapes: Map<string, number[]>, numHeads?: number): { config: VitConfig; notes: string[] } {
  const notes: string[] = [];
  const need = (name: string, rank: number): number[] => {
    const s = shapes.get(name);
    if (!s) throw new WeightsError(`cannot infer the ViT config: tensor '${name}' is missing`);
    if (s.length !== rank) throw new WeightsError(`cannot infer the ViT config: '${name}' has shape ${fmt(s)}, expected rank ${rank}`);
    return s;
  };
  const conv = need('conv_proj.weight', 4);
  const [hidden_dim, inCh, ph, pw] = conv;
  if (inCh !== 3) throw new WeightsError(`conv_proj.weight has shape ${fmt(conv)}: expected 3 input channels (RGB), got ${inCh}`);
  if (ph !== pw) throw new WeightsError(`conv_proj.weight has shape ${fmt(conv)}: non-square patches are not supported`);
  const patch_size = ph;

  const pos = need('encoder.pos_embedding', 3);
  if (pos[0] !== 1 || pos[2] !== hidden_dim) {
    throw new WeightsError(`encoder.pos_embedding has shape ${fmt(pos)}, expected [1, 1 + patches, ${hidden_dim}]`);
  }
  const side = Math.round(Math.sqrt(pos[1] - 1));
  if (pos[1] < 2 || side * side !== pos[1] - 1) {
    throw new WeightsError(`encoder.pos_embedding has ${pos[1]} positions: expected 1 + a square number of patches`);
  }
  const image_size = side * patch_size;

  const layerIdx = new Set<number>();
  for (const k of shapes.keys()) {
    const mm = /^encoder\.layers\.encoder_layer_(\d+)\./.exec(k);
    if (mm) layerIdx.add(Number(mm[1]));
  }
  const num_layers = layerIdx.size;
  if (num_layers === 0) throw new WeightsError('cannot infer the ViT config: no encoder.layers.encoder_layer_{i} tensors');
  for (let i = 0; i < num_layers; i++) {
    if (!layerIdx.has(i)) {
      throw new WeightsError(`encoder layers are not numbered 0..${num_layers - 1}: found ${[...layerIdx].sort((a, b) => a - b).join(', ')}`);
    }
  }

  const mlpName = shapes.has('encoder.layers.encoder_layer_0.mlp.0.weight')
    ? 'encoder.layers.encoder_layer_0.mlp.0.weight'
    : 'encoder.layers.encoder_layer_0.mlp.linear_1.weight';
  const mlp = shapes.get(mlpName);
  if (!mlp) throw new WeightsError('cannot infer the ViT config: encoder.layers.encoder_layer_0.mlp.0.weight is missing');
  if (mlp.length !== 2) throw new WeightsError(`${mlpName} has shape ${fmt(mlp)}, expected [mlp_dim, ${hidden_dim}]`);
  const mlp_dim = mlp[0];

  if (shapes.has('heads.pre_logits.weight')) {
    throw new WeightsError('the checkpoint has a pre-logits layer (heads.pre_logits, representation_size): not supported');
  }
  const head = need('heads.head.weight', 2);
  const num_classes = head[0];

  let num_heads: number;
  if (numHeads !== undefined) {
    if (!isPosInt(numHeads)) throw new WeightsError(`num_heads must be a positive integer, got ${numHeads}`);
    num_heads = numHeads;
  } else {
    const match = Object.entries(VIT_PRESETS).find(
      ([, p]) => p.hidden_dim === hidden_dim && p.mlp_dim === mlp_dim && p.num_layers === num_layers,
    );
    if (match) {
      num_heads = match[1].num_heads;
      notes.push(
        `num_heads cannot be read from the weights: using ${num_heads}, as ${match[0]} (same hidden/mlp/layers); pass --num-heads if that is wrong`,
      );
    } else if (hidden_dim % 64 === 0) {
      num_heads = hidden_dim / 64;
      notes.push(
        `num_heads cannot be read from the weights: using hidden_dim / 64 = ${num_heads} (head size 64, as standard ViTs); pass --num-heads if that is wrong`,
      );
    } else {
      throw new WeightsError(
        `num_heads cannot be read from the weights and hidden_dim ${hidden_dim} is not a multiple of 64: pass it explicitly (--num-heads N)`,
      );
    }
  }

  const config: VitConfig = {
    image_size,
    patch_size,
    num_layers,
    num_heads,
    hidden_dim,
    mlp_dim,
    num_classes,
    dropout: 0,
    attention_dropout: 0,
    representation_size: null,
  };
  validateConfig(config);
  return { config, notes };
}
