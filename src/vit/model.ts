// VisionTransformer, layer for layer as torchvision.models.vision_transformer.VisionTransformer, with the same
// state_dict names (namedParameters() yields them: the field paths below are chosen to spell torchvision's keys).
//
//   image [B, 3, S, S]
//   conv_proj (kernel = stride = patch): image → patches [B, n, 3·p·p] (reshape/permute) · Wᵀ, W = conv weight
//       viewed [hidden, 3·p·p], + bias                                       → [B, n, hidden]
//   class_token prepended (config pool 'cls')                               → [B, N, hidden], N = n + 1
//   + encoder.pos_embedding [1, N, hidden] (config posEmbedding), dropout
//   encoder.layers.encoder_layer_i (pre-norm):
//       x = x + dropout(self_attention(ln_1(x)))        ln eps 1e-6
//       x = x + mlp(ln_2(x))                            mlp.0: hidden→mlp_dim, GELU (erf), dropout, mlp.3: →hidden, dropout
//   encoder.ln, then the class token (or the mean over tokens for pool 'mean'), heads.head → logits [B, classes]
//
// self_attention as torch.nn.MultiheadAttention: in_proj_weight [3·hidden, hidden] packs Q, K, V; heads
// [B, H, N, D]; out_proj. Two interchangeable attention paths: 'fused' (the flash-style kernel, ops.attention) and
// 'explicit' (q·kᵀ·scale → softmax → ·v) which can return every layer's attention probabilities [B, H, N, N].
// Head ablation masks (layer, head) pairs at inference: the fused kernel's headScale, or the explicit path's
// head outputs multiplied by 0 — either way the head's contribution to out_proj's input is zero.
//
// Initialisation follows torchvision's scheme (seeded, deterministic), except where noted:
//   conv_proj.weight  truncated normal, std sqrt(1/fan_in) (fan_in = 3·p·p), cut at ±2 std; bias 0
//   class_token 0; encoder.pos_embedding normal std 0.02
//   in_proj_weight xavier-uniform; in_proj_bias 0; out_proj.weight U(±1/sqrt(hidden)) (nn.Linear's default); bias 0
//   mlp.{0,3}.weight xavier-uniform; biases normal std 1e-6
//   layer norms 1 / 0
//   heads.head 0 (torchvision's choice); `init: 'random'` draws it xavier-uniform instead (tests, ablations)
import * as ops from '../autograd/ops.js';
import { Module } from '../autograd/module.js';
import { isGradEnabled, noGrad, Parameter, Tensor } from '../autograd/tensor.js';
import { GpuArray, scope } from '../kernels/memory.js';
import { gpu } from '../kernels/device.js';
import { rng } from '../kernels/ref/math.js';
import { validateConfig, type VitConfig } from './config.js';
import { attentionChoiceFor, type AttentionChoice, type AttentionPath } from './attentionTuning.js';

// The path per adapter and shape (a measured table, or a tuned and cached choice): attentionTuning.ts.
export { defaultAttentionChoice, type AttentionPath } from './attentionTuning.js';

/** Switches beyond torchvision's arguments (for the from-scratch track); defaults are torchvision's. */
export interface VitOptions {
  /** Learnable 1-D position embedding (default true). */
  posEmbedding?: boolean;
  /** 'cls': class token → head (default, torchvision); 'mean': no class token, mean over patch tokens. */
  pool?: 'cls' | 'mean';
  /** Seed of the initialisation (default 0). */
  seed?: number;
  /** 'torchvision' (default; zero head) or 'random' (the head drawn too, so outputs depend on everything). */
  init?: 'torchvision' | 'random';
  /** Default attention path of forward() (default: the adapter's choice for the model's shape, attentionChoiceFor). */
  attention?: AttentionPath;
}

export interface ForwardOptions {
  /** Attention path (default: the model's). */
  attention?: AttentionPath;
  /** Return every layer's attention probabilities [B, H, N, N] (explicit path only). */
  returnAttention?: boolean;
  /** (layer, head) pairs to mask. */
  ablate?: Iterable<readonly [number, number]>;
}

export interface ForwardResult {
  /** [B, num_classes]. */
  logits: Tensor;
  /** One [B, H, N, N] per layer, when asked for. */
  attentions?: Tensor[];
}

/** A state dict entry, as safetensors/torch files hold it. */
export interface StateTensor {
  shape: number[];
  data: Float32Array;
}

// ---- seeded initialisers --------------------------------------------------------------------------

class Init {
  private u: () => number;
  constructor(seed: number) {
    this.u = rng(seed);
  }
  uniform(n: number, bound: number): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = (2 * this.u() - 1) * bound;
    return a;
  }
  private gauss(): number {
    // Box–Muller
    const u1 = Math.max(this.u(), 1e-300);
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * this.u());
  }
  normal(n: number, std: number): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = this.gauss() * std;
    return a;
  }
  truncNormal(n: number, std: number): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let g: number;
      do g = this.gauss();
      while (Math.abs(g) > 2);
      a[i] = g * std;
    }
    return a;
  }
  xavier(fanOut: number, fanIn: number): Float32Array {
    return this.uniform(fanOut * fanIn, Math.sqrt(6 / (fanIn + fanOut)));
  }
}

const param = (data: Float32Array, shape: number[], name: string) => new Parameter(GpuArray.fromData(data, shape, name), name);
const zeros = (shape: number[], name: string) => param(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape, name);
const ones = (shape: number[], name: string) => param(new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(1), shape, name);

// ---- layers -----------------------------------------------------------------------------------------

export class Linear extends Module {
  weight: Parameter;
  bias: Parameter;
  constructor(inF: number, outF: number, weight: Float32Array, bias: Float32Array, name: string) {
    super();
    this.weight = param(weight, [outF, inF], `${name}.weight`);
    this.bias = param(bias, [outF], `${name}.bias`);
  }
  forward(x: Tensor): Tensor {
    return ops.linear(x, this.weight, this.bias);
  }
}

export class LayerNorm extends Module {
  weight: Parameter;
  bias: Parameter;
  constructor(dim: number, readonly eps: number, name: string) {
    super();
    this.weight = ones([dim], `${name}.weight`);
    this.bias = zeros([dim], `${name}.bias`);
  }
  forward(x: Tensor): Tensor {
    return ops.layerNorm(x, this.weight, this.bias, this.eps);
  }
}

/** torch.nn.MultiheadAttention (batch_first, self-attention, no masks) with torchvision's names. */
export class MultiheadSelfAttention extends Module {
  in_proj_weight: Parameter;
  in_proj_bias: Parameter;
  out_proj: Linear;
  constructor(readonly hidden: number, readonly heads: number, readonly attentionDropout: number, init: Init, name: string) {
    super();
    this.in_proj_weight = param(init.xavier(3 * hidden, hidden), [3 * hidden, hidden], `${name}.in_proj_weight`);
    this.in_proj_bias = zeros([3 * hidden], `${name}.in_proj_bias`);
    this.out_proj = new Linear(hidden, hidden, init.uniform(hidden * hidden, 1 / Math.sqrt(hidden)), new Float32Array(hidden), `${name}.out_proj`);
  }

  /**
   * x [B, N, hidden] → [B, N, hidden]. `headMask` [H] (1 keep, 0 ablate) or null. The explicit path returns the
   * attention probabilities [B, H, N, N] when `wantProbs`.
   */
  forward(
    x: Tensor,
    path: AttentionPath,
    headMask: Float32Array | null,
    wantProbs: boolean,
    dropoutSeed: () => number,
    variant?: string,
  ): { y: Tensor; probs?: Tensor } {
    const [B, N, C] = x.shape;
    const H = this.heads;
    const D = C / H;
    // Outputs that no backward rule reads are released as soon as they are used (Tensor.release): qkv and its split
    // (the slices copy q, k, v out), the scores S (softmax's rule reads its output P), the explicit path's P·V and the
    // out-projection (their consumers' rules read nothing of them). The fashion-mnist model's training step at batch 128
    // peaked at 36.5 MiB above its weights this way, 57.9 before (`bench profile` reports it).
    const qkv = ops.linear(x, this.in_proj_weight, this.in_proj_bias); // [B, N, 3C]
    const qkv5 = ops.reshape(qkv, [B, N, 3, H, D]);
    const split = ops.permute(qkv5, [2, 0, 3, 1, 4]); // [3, B, H, N, D]
    qkv.release();
    qkv5.release();
    const part = (i: number) => ops.reshape(ops.slice(split, [i, 0, 0, 0, 0], [i + 1, B, H, N, D]), [B, H, N, D]);
    const q = part(0);
    const k = part(1);
    const v = part(2);
    split.release();
    const scale = 1 / Math.sqrt(D);
    let o: Tensor; // [B, H, N, D]
    let probs: Tensor | undefined;
    const attnDrop = this.training ? this.attentionDropout : 0;
    if (path === 'fused' && !wantProbs && attnDrop === 0) {
      const hs = headMask ? GpuArray.fromData(headMask, [H], 'headScale') : undefined;
      o = ops.attention(q, k, v, { scale, headScale: hs, variant });
      // The op's backward reads headScale: while a graph is recorded it stays with it (an enclosing scope frees
      // it); at inference it is freed now (the pool's next upload flushes the recorded kernel first).
      if (hs && !o.requiresGrad) hs.dispose();
    } else {
      const s = ops.matmul(q, k, { transB: true, alpha: scale }); // [B, H, N, N], scaled in the matmul's store
      probs = ops.softmax(s);
      s.release();
      const p = attnDrop > 0 ? ops.dropout(probs, attnDrop, dropoutSeed()) : probs;
      o = ops.matmul(p, v);
      if (headMask) o = ops.mul(o, Tensor.from(headMask, [1, H, 1, 1])); // (mul's rule reads the unmasked o: kept)
    }
    const merged = ops.reshape(ops.permute(o, [0, 2, 1, 3]), [B, N, C]);
    // (the fused op's rule reads its output: released only on the explicit path, and only unmasked)
    if (path !== 'fused' || wantProbs || attnDrop > 0) {
      if (!headMask) o.release();
    }
    return { y: this.out_proj.forward(merged), probs: wantProbs ? probs : undefined };
  }
}

export class MLPBlock extends Module {
  // torchvision's MLPBlock is nn.Sequential(Linear, GELU, Dropout, Linear, Dropout): parameters at 0 and 3.
  '0': Linear;
  '3': Linear;
  constructor(hidden: number, mlpDim: number, readonly dropoutP: number, init: Init, name: string) {
    super();
    this['0'] = new Linear(hidden, mlpDim, init.xavier(mlpDim, hidden), init.normal(mlpDim, 1e-6), `${name}.0`);
    this['3'] = new Linear(mlpDim, hidden, init.xavier(hidden, mlpDim), init.normal(hidden, 1e-6), `${name}.3`);
  }
  forward(x: Tensor, dropoutSeed: () => number): Tensor {
    const p = this.training ? this.dropoutP : 0;
    let h = ops.gelu(this['0'].forward(x));
    if (p > 0) h = ops.dropout(h, p, dropoutSeed());
    let y = this['3'].forward(h);
    if (p > 0) {
      const y0 = y;
      y = ops.dropout(y0, p, dropoutSeed());
      y0.release(); // dropout's rule reads its mask, not its input
    }
    return y;
  }
}

export class EncoderBlock extends Module {
  ln_1: LayerNorm;
  self_attention: MultiheadSelfAttention;
  ln_2: LayerNorm;
  mlp: MLPBlock;
  constructor(c: VitConfig, init: Init, name: string) {
    super();
    this.ln_1 = new LayerNorm(c.hidden_dim, 1e-6, `${name}.ln_1`);
    this.self_attention = new MultiheadSelfAttention(c.hidden_dim, c.num_heads, c.attention_dropout, init, `${name}.self_attention`);
    this.ln_2 = new LayerNorm(c.hidden_dim, 1e-6, `${name}.ln_2`);
    this.mlp = new MLPBlock(c.hidden_dim, c.mlp_dim, c.dropout, init, `${name}.mlp`);
  }
}

/** nn.Sequential of encoder_layer_0 … encoder_layer_{L-1} (fields added in order). */
export class EncoderLayers extends Module {
  [name: `encoder_layer_${number}`]: EncoderBlock;
}

export class Encoder extends Module {
  pos_embedding?: Parameter;
  layers: EncoderLayers;
  ln: LayerNorm;
  declare readonly blocks: EncoderBlock[];
  constructor(c: VitConfig, seqLen: number, withPos: boolean, init: Init) {
    super();
    if (withPos) this.pos_embedding = param(init.normal(seqLen * c.hidden_dim, 0.02), [1, seqLen, c.hidden_dim], 'encoder.pos_embedding');
    this.layers = new EncoderLayers();
    const blocks: EncoderBlock[] = [];
    for (let i = 0; i < c.num_layers; i++) {
      const b = new EncoderBlock(c, init, `encoder.layers.encoder_layer_${i}`);
      this.layers[`encoder_layer_${i}`] = b;
      blocks.push(b);
    }
    this.ln = new LayerNorm(c.hidden_dim, 1e-6, 'encoder.ln');
    // Not enumerable, so namedParameters() does not walk the blocks twice.
    Object.defineProperty(this, 'blocks', { value: blocks, enumerable: false });
  }
}

/** The patch embedding: torchvision's Conv2d(3, hidden, kernel = stride = patch), weight [hidden, 3, p, p]. */
export class ConvProj extends Module {
  weight: Parameter;
  bias: Parameter;
  constructor(hidden: number, readonly patch: number, init: Init) {
    super();
    const fanIn = 3 * patch * patch;
    this.weight = param(init.truncNormal(hidden * fanIn, Math.sqrt(1 / fanIn)), [hidden, 3, patch, patch], 'conv_proj.weight');
    this.bias = zeros([hidden], 'conv_proj.bias');
  }
  /** images [B, 3, S, S] → [B, (S/p)², hidden]: patches [B, g, g, 3, p, p] flattened, times the weight viewed [hidden, 3·p·p]. */
  forward(images: Tensor): Tensor {
    const [B, , S] = images.shape;
    const p = this.patch;
    const g = S / p;
    const patches = ops.reshape(ops.permute(ops.reshape(images, [B, 3, g, p, g, p]), [0, 2, 4, 1, 3, 5]), [B, g * g, 3 * p * p]);
    return ops.linear(patches, ops.reshape(this.weight, [this.weight.shape[0], 3 * p * p]), this.bias);
  }
}

export class Heads extends Module {
  head: Linear;
  constructor(hidden: number, classes: number, weight: Float32Array, bias: Float32Array) {
    super();
    this.head = new Linear(hidden, classes, weight, bias, 'heads.head');
  }
}

const fmtS = (s: readonly number[]) => `[${s.join(', ')}]`;

export class VisionTransformer extends Module {
  class_token?: Parameter;
  conv_proj: ConvProj;
  encoder: Encoder;
  heads: Heads;
  /** Dropout seeds advance with every dropout call (training). */
  private dropoutCounter = 0;

  constructor(
    readonly config: VitConfig,
    readonly options: VitOptions = {},
  ) {
    super();
    validateConfig(config);
    const c = config;
    const init = new Init(options.seed ?? 0);
    const p = c.patch_size;
    const n = (c.image_size / p) ** 2;
    const cls = (options.pool ?? 'cls') === 'cls';
    if (cls) this.class_token = zeros([1, 1, c.hidden_dim], 'class_token');
    this.conv_proj = new ConvProj(c.hidden_dim, p, init);
    this.encoder = new Encoder(c, n + (cls ? 1 : 0), options.posEmbedding ?? true, init);
    const random = options.init === 'random';
    this.heads = new Heads(
      c.hidden_dim,
      c.num_classes,
      random ? init.xavier(c.num_classes, c.hidden_dim) : new Float32Array(c.num_classes * c.hidden_dim),
      random ? init.normal(c.num_classes, 0.02) : new Float32Array(c.num_classes),
    );
  }

  get seqLength(): number {
    return (this.config.image_size / this.config.patch_size) ** 2 + (this.class_token ? 1 : 0);
  }

  private nextSeed = (): number => (this.options.seed ?? 0) * 1_000_003 + ++this.dropoutCounter;

  /** images [B, 3, S, S] (normalised) → logits [B, classes] (and the attention probabilities when asked). */
  forward(images: Tensor, opts: ForwardOptions = {}): ForwardResult {
    const c = this.config;
    const S = c.image_size;
    const D = c.hidden_dim;
    if (images.shape.length !== 4 || images.shape[1] !== 3 || images.shape[2] !== S || images.shape[3] !== S) {
      throw new RangeError(`VisionTransformer: input ${fmtS(images.shape)} must be [B, 3, ${S}, ${S}]`);
    }
    const named = opts.attention ?? this.options.attention;
    if (named !== undefined && named !== 'fused' && named !== 'explicit') throw new RangeError(`VisionTransformer: attention path must be 'fused' or 'explicit', got '${String(named)}'`);
    // Named: that path (fused with the adapter's default variant). Otherwise the adapter's choice for this shape and
    // mode (a graph being recorded means a backward will run): the table, or a tuned choice with its fused variant.
    const choice = named === undefined ? this.attentionChoice(isGradEnabled() ? 'train' : 'infer') : { path: named, variant: undefined };
    const path = choice.path;
    const wantProbs = !!opts.returnAttention;
    const masks = this.headMasks(opts.ablate);
    const B = images.shape[0];

    let x = this.conv_proj.forward(images); // [B, n, D]
    if (this.class_token) {
      const cls = B === 1 ? this.class_token : ops.add(Tensor.from(new Float32Array(B * D), [B, 1, D]), this.class_token);
      x = ops.concat([cls, x], 1);
    }
    if (this.encoder.pos_embedding) x = ops.add(x, this.encoder.pos_embedding);
    const drop = this.training ? c.dropout : 0;
    if (drop > 0) x = ops.dropout(x, drop, this.nextSeed());

    const attentions: Tensor[] = [];
    // Without a graph (inference), each block runs in a scope of its own and its input is freed once it has run, so
    // a forward holds one block's intermediates at a time rather than every layer's: vit_b_16 at batch 1 needed
    // 184 MiB above its weights with all of them kept until the caller's scope ended, 13 MiB this way
    // (`bench profile --what forward`). With a graph, the backward needs them all.
    const inference = !isGradEnabled();
    this.encoder.blocks.forEach((blk, l) => {
      const run = (x: Tensor) => {
        const a = blk.self_attention.forward(blk.ln_1.forward(x), path, masks[l], wantProbs, this.nextSeed, choice.variant);
        let y = a.y;
        if (drop > 0) y = ops.dropout(y, drop, this.nextSeed());
        const h = ops.add(x, y);
        a.y.release(); // the residual adds' rules read nothing of their operands (dropout's reads its mask)
        y.release();
        const m = blk.mlp.forward(blk.ln_2.forward(h), this.nextSeed);
        const out = ops.add(h, m);
        m.release();
        return { x: out, probs: a.probs };
      };
      // (x is never the caller's tensor: the patch embedding made it in this forward)
      const r = inference ? scope(() => run(x)) : run(x);
      if (inference) x.data.dispose();
      if (r.probs) attentions.push(r.probs);
      x = r.x;
    });
    x = this.encoder.ln.forward(x);
    const pooled = this.class_token ? ops.reshape(ops.slice(x, [0, 0, 0], [B, 1, D]), [B, D]) : ops.mean(x, [1]);
    const logits = this.heads.head.forward(pooled);
    return wantProbs ? { logits, attentions } : { logits };
  }

  /** The attention path forward() takes by default on this adapter, for this model's shape, in a mode. */
  attentionChoice(mode: 'train' | 'infer'): AttentionChoice {
    const c = this.config;
    return attentionChoiceFor(this.seqLength, c.hidden_dim / c.num_heads, mode);
  }

  /** Per layer: the [H] 0/1 mask, or null when no head of that layer is ablated. */
  private headMasks(ablate?: Iterable<readonly [number, number]>): (Float32Array | null)[] {
    const L = this.config.num_layers;
    const H = this.config.num_heads;
    const masks: (Float32Array | null)[] = new Array(L).fill(null);
    if (!ablate) return masks;
    for (const [l, h] of ablate) {
      if (!Number.isInteger(l) || l < 0 || l >= L || !Number.isInteger(h) || h < 0 || h >= H) {
        throw new RangeError(`head ablation: (layer ${l}, head ${h}) is out of range: the model has layers 0..${L - 1} and heads 0..${H - 1}`);
      }
      (masks[l] ??= new Float32Array(H).fill(1))[h] = 0;
    }
    return masks;
  }

  /** Inference: logits as host arrays, no graph recorded, intermediates freed. */
  async predictLogits(input: Float32Array, batch: number, opts: ForwardOptions = {}): Promise<Float32Array> {
    const S = this.config.image_size;
    return noGrad(() =>
      scope(async () => {
        const r = this.forward(Tensor.from(input, [batch, 3, S, S]), opts);
        return r.logits.read();
      }),
    );
  }

  /** torchvision's state_dict: name → {shape, data} (read back from the GPU), in namedParameters() order. */
  async stateDict(): Promise<Map<string, StateTensor>> {
    const out = new Map<string, StateTensor>();
    for (const [name, p] of this.namedParameters()) out.set(name, { shape: [...p.shape], data: await p.read() });
    return out;
  }

  /** Shapes of every parameter, by state_dict name. */
  parameterShapes(): Map<string, number[]> {
    return new Map([...this.namedParameters()].map(([n, p]) => [n, [...p.shape]]));
  }

  /**
   * Load a state dict strictly: every parameter must be present with its exact shape and no other tensor may be
   * there; one error lists every missing, unexpected and mis-shaped tensor. Nothing is written unless all match.
   */
  loadStateDict(tensors: Map<string, { shape: readonly number[]; data: ArrayLike<number> }>): void {
    const params = new Map(this.namedParameters());
    const missing: string[] = [];
    const misshaped: string[] = [];
    for (const [name, p] of params) {
      const t = tensors.get(name);
      if (!t) missing.push(name);
      else if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i])) misshaped.push(`${name} is ${fmtS(t.shape)}, expected ${fmtS(p.shape)}`);
      else if (t.data.length !== p.size) misshaped.push(`${name} has ${t.data.length} values for shape ${fmtS(t.shape)}`);
    }
    const unexpected = [...tensors.keys()].filter((k) => !params.has(k));
    if (missing.length || unexpected.length || misshaped.length) {
      const parts: string[] = [];
      if (missing.length) parts.push(`missing ${missing.length}: ${missing.join(', ')}`);
      if (unexpected.length) parts.push(`unexpected ${unexpected.length}: ${unexpected.join(', ')}`);
      if (misshaped.length) parts.push(`wrong shape ${misshaped.length}: ${misshaped.join('; ')}`);
      throw new Error(`loadStateDict: the weights do not fit this model (${describe(this.config)}): ${parts.join('; ')}`);
    }
    for (const [name, p] of params) {
      const d = tensors.get(name)!.data;
      p.assign(d instanceof Float32Array ? d : Float32Array.from(d));
    }
  }
}

function describe(c: VitConfig): string {
  return `image ${c.image_size}, patch ${c.patch_size}, ${c.num_layers} layers, ${c.num_heads} heads, hidden ${c.hidden_dim}, mlp ${c.mlp_dim}, ${c.num_classes} classes`;
}
