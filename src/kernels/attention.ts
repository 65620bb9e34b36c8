// Fused (FlashAttention-style) attention, forward and backward. The N×N score matrix never goes to
// global memory: the forward streams key blocks with an online softmax and saves lse per query row;
// the backward (FlashAttention-2) recomputes P = exp(S - lse) from q, k and lse.
//
// Kernels (WGSL in shaders/attention_*.wgsl; reference in ref/attention.ts):
//   forward   attention_fwd_{rows,tiled}  one launch
//   backward  attention_bwd_prep          Di = rowsum(dO∘O), lse made exp-safe, dOs = headScale·dO
//             attention_dq_{rows,tiled}   dQ: per query row, one pass over key blocks
//             attention_dkv_{rows,tiled}  dK, dV: per key row, one pass over query blocks (no atomics)
// Variants: 'rows' (one invocation per row, K/V streamed from global memory, no barriers: fastest on
// lavapipe, whose barriers are slow) and 'tiled' (a workgroup of 64 rows stages K/V, or Q/dO, blocks in
// workgroup memory behind barriers: what a real GPU wants). Default by adapter: see defaultAttentionVariant().
//
// A query row whose mask is -Infinity everywhere has out = 0, lse = -Infinity and gradients 0 (no NaN).
import { gpu } from './device.js';
import { dispatch, grid2d, packUniforms, pipeline } from './launch.js';
import { GpuArray, fmt } from './memory.js';

export const ATTENTION_VARIANTS = ['rows', 'tiled'] as const;
export type AttentionVariant = (typeof ATTENTION_VARIANTS)[number];

export interface AttentionOptions {
  /** Multiplies q·kᵀ; default 1/sqrt(D). */
  scale?: number;
  /** Additive mask on the scores: [N, N], [B, H, N, N], [B, 1, N, N] (also [1, H, N, N], [1, 1, N, N]); -Infinity allowed. */
  mask?: GpuArray;
  /** [H]: multiplies each head's output (0 ablates a head); gradients flow to q/k/v scaled by it. */
  headScale?: GpuArray;
  /** 'rows' or 'tiled'; default chosen by adapter (defaultAttentionVariant()). */
  variant?: string;
}

/** Largest head dimension the kernels accept (per-invocation arrays of D floats). */
export const ATTENTION_MAX_D = 256;
/** Query (or key) rows per workgroup. */
const WG = 64;
/** Keys per online-softmax block in the rows forward. */
const ROWS_BK = 16;

/** 'rows' on software adapters (lavapipe/llvmpipe, SwiftShader), where barriers are slow; 'tiled' on GPUs. */
export function defaultAttentionVariant(adapterKey = gpu().adapterKey): AttentionVariant {
  return adapterKey === 'llvmpipe' || adapterKey === 'swiftshader' ? 'rows' : 'tiled';
}

interface Dims {
  B: number;
  H: number;
  N: number;
  D: number;
  maskB: number;
  maskH: number;
  variant: AttentionVariant;
}

function check(op: string, q: GpuArray, k: GpuArray, v: GpuArray, opts: AttentionOptions): Dims {
  if (q.rank !== 4) throw new RangeError(`${op}: q must be [B, H, N, D], got q ${fmt(q.shape)}`);
  const [B, H, N, D] = q.shape;
  for (const [name, a] of [['k', k], ['v', v]] as const) {
    if (a.rank !== 4 || a.shape.some((x, i) => x !== q.shape[i])) {
      throw new RangeError(`${op}: ${name} ${fmt(a.shape)} does not match q ${fmt(q.shape)} (q, k, v must all be [B, H, N, D])`);
    }
  }
  if (D < 1 || D > ATTENTION_MAX_D) throw new RangeError(`${op}: head dimension D=${D} of q ${fmt(q.shape)} is outside 1..${ATTENTION_MAX_D}`);
  let maskB = 0;
  let maskH = 0;
  const m = opts.mask;
  if (m) {
    const ms = m.shape;
    const ok2 = ms.length === 2 && ms[0] === N && ms[1] === N;
    const ok4 = ms.length === 4 && (ms[0] === B || ms[0] === 1) && (ms[1] === H || ms[1] === 1) && ms[2] === N && ms[3] === N;
    if (!ok2 && !ok4) {
      throw new RangeError(`${op}: mask ${fmt(ms)} does not fit q ${fmt(q.shape)}: expected [${N}, ${N}], [${B}, ${H}, ${N}, ${N}] or [${B}, 1, ${N}, ${N}]`);
    }
    if (ok4) {
      maskH = ms[1] === 1 ? 0 : N * N;
      maskB = ms[0] === 1 ? 0 : ms[1] * N * N;
    }
  }
  const hs = opts.headScale;
  if (hs && (hs.rank !== 1 || hs.shape[0] !== H)) {
    throw new RangeError(`${op}: headScale ${fmt(hs.shape)} must be [${H}] for q ${fmt(q.shape)}`);
  }
  const variant = (opts.variant ?? defaultAttentionVariant()) as AttentionVariant;
  if (!ATTENTION_VARIANTS.includes(variant)) {
    throw new RangeError(`${op}: unknown variant '${opts.variant}' (known: ${ATTENTION_VARIANTS.join(', ')})`);
  }
  return { B, H, N, D, maskB, maskH, variant };
}

/**
 * Loop bound over the head dimension: the constant D on GPUs (loops unroll and the per-row arrays stay
 * in registers), the uniform P.d on software adapters, whose shader compiler otherwise unrolls the
 * small-D loop nests completely and takes tens of seconds per pipeline (measured: 26 s at D=5 on lavapipe).
 */
function dLoop(): string {
  const key = gpu().adapterKey;
  return key === 'llvmpipe' || key === 'swiftshader' ? 'P.d' : 'D';
}

/** Workgroups: x over row blocks, B·H over y (and z past the per-dimension limit). */
function groups(n: number, bh: number): [number, number, number] {
  const [y, z] = grid2d(bh);
  return [Math.ceil(n / WG), y, z];
}

/** Keys (or queries) per workgroup-memory block in the tiled kernels: two blocks of BK×D floats (+ BK×2 row stats) fit 16 KiB. */
function tiledBlock(D: number): number {
  const bytes = Math.min(16384, gpu().limits.maxComputeWorkgroupStorageSize);
  return Math.max(1, Math.min(64, Math.floor(bytes / (8 * (D + 1)))));
}

function uniforms(d: Dims, scale: number, extra: number): ArrayBuffer {
  return packUniforms([
    ['u32', d.N],
    ['u32', d.B * d.H],
    ['u32', d.H],
    ['u32', d.maskB],
    ['u32', d.maskH],
    ['f32', scale],
    ['f32', extra],
    ['u32', d.D],
  ]);
}

/**
 * q, k, v: [B, H, N, D]. Returns out [B, H, N, D] = headScale[h]·softmax(scale·q·kᵀ + mask)·v and
 * lse [B, H, N] = logsumexp of the scaled, masked scores per query row (saved for the backward).
 */
export function attentionForward(q: GpuArray, k: GpuArray, v: GpuArray, opts: AttentionOptions = {}): { out: GpuArray; lse: GpuArray } {
  const op = 'attentionForward';
  const d = check(op, q, k, v, opts);
  const scale = opts.scale ?? 1 / Math.sqrt(d.D);
  const out = GpuArray.empty(q.shape, op);
  const lse = GpuArray.empty([d.B, d.H, d.N], op);
  const defs: Record<string, string | number> = { D: d.D, DLOOP: dLoop(), WG, HAS_MASK: String(!!opts.mask), HAS_HS: String(!!opts.headScale) };
  defs.BK = d.variant === 'rows' ? ROWS_BK : tiledBlock(d.D);
  const bufs = [q.buffer, k.buffer, v.buffer, (opts.mask ?? q).buffer, (opts.headScale ?? q).buffer, out.buffer, lse.buffer];
  dispatch(op, pipeline(`attention_fwd_${d.variant}`, defs), bufs, uniforms(d, scale, -Infinity), groups(d.N, d.B * d.H));
  return { out, lse };
}

/**
 * Gradients of sum(dout ∘ out) for out = attentionForward(q, k, v, opts).out, from the saved out and lse
 * (pass the same opts). Recomputes the probabilities; never materialises the N×N matrix.
 */
export function attentionBackward(
  q: GpuArray,
  k: GpuArray,
  v: GpuArray,
  out: GpuArray,
  lse: GpuArray,
  dout: GpuArray,
  opts: AttentionOptions = {},
): { dq: GpuArray; dk: GpuArray; dv: GpuArray } {
  const op = 'attentionBackward';
  const d = check(op, q, k, v, opts);
  for (const [name, a] of [['out', out], ['dout', dout]] as const) {
    if (a.rank !== 4 || a.shape.some((x, i) => x !== q.shape[i])) throw new RangeError(`${op}: ${name} ${fmt(a.shape)} does not match q ${fmt(q.shape)}`);
  }
  if (lse.rank !== 3 || lse.shape[0] !== d.B || lse.shape[1] !== d.H || lse.shape[2] !== d.N) {
    throw new RangeError(`${op}: lse ${fmt(lse.shape)} must be [${d.B}, ${d.H}, ${d.N}] for q ${fmt(q.shape)}`);
  }
  const scale = opts.scale ?? 1 / Math.sqrt(d.D);
  const rows = d.B * d.H * d.N;
  const stats = GpuArray.empty([rows, 2], op);
  const dos = GpuArray.empty(q.shape, op);
  dispatch(
    `${op} prep`,
    pipeline('attention_bwd_prep', { D: d.D, DLOOP: dLoop(), HAS_HS: String(!!opts.headScale) }),
    [out.buffer, dout.buffer, lse.buffer, (opts.headScale ?? lse).buffer, stats.buffer, dos.buffer],
    packUniforms([['u32', rows], ['u32', d.N], ['u32', d.H], ['u32', d.D]]),
    grid2d(Math.ceil(rows / 64)),
  );
  const dq = GpuArray.empty(q.shape, op);
  const dk = GpuArray.empty(q.shape, op);
  const dv = GpuArray.empty(q.shape, op);
  const defs: Record<string, string | number> = { D: d.D, DLOOP: dLoop(), WG, HAS_MASK: String(!!opts.mask) };
  if (d.variant === 'tiled') defs.BK = tiledBlock(d.D);
  const mask = (opts.mask ?? q).buffer;
  const u = uniforms(d, scale, 0);
  const g = groups(d.N, d.B * d.H);
  dispatch(`${op} dq`, pipeline(`attention_dq_${d.variant}`, defs), [q.buffer, k.buffer, v.buffer, mask, stats.buffer, dos.buffer, dq.buffer], u, g);
  dispatch(`${op} dkv`, pipeline(`attention_dkv_${d.variant}`, defs), [q.buffer, k.buffer, v.buffer, mask, stats.buffer, dos.buffer, dk.buffer, dv.buffer], u, g);
  stats.dispose();
  dos.dispose();
  return { dq, dk, dv };
}
