// Matrix multiply with optional transposes, batching, a shared (2-D) right operand and a fused bias.
// WGSL: shaders/matmul_{naive,tiled,tiled_vec4,blocked,blocked_vec4,subgroup}.wgsl. Reference: ref/matmul.ts.
// Variant choice per adapter: autotune.ts (a default table, or a measured and cached choice).
import { matmulVariantForProduct } from './autotune.js';
import { gpu } from './device.js';
import { dispatch, packUniforms, pipeline } from './launch.js';
import { transpose } from './layout.js';
import { GpuArray, fmt } from './memory.js';
import { sum } from './reduce.js';

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
  /** [N], added to every output row (fused into the kernel's store). */
  bias?: GpuArray;
  /** Scale of the product, applied before the bias in the kernel's store: C = alpha·op(A)·op(B) + bias (default 1). */
  alpha?: number;
  /**
   * One of MATMUL_VARIANTS (or a tuned form such as 'blocked-vec4@8x4/16x4'), optionally with PLAIN_SUFFIX
   * ('blocked-vec4:plain'); default: the adapter's choice.
   */
  variant?: string;
}

/**
 * A variant name ending in this runs every product in the plain form: a transposed operand is first copied into its
 * plain layout (layout.ts's transpose: 4×4 blocks as vec4s where both sides are multiples of 4, else the strided
 * copy), then the kernel multiplies without transposes. For kernels whose transposed loads are strided across lanes
 * (blocked-vec4's and subgroup's Bᵀ rows: each lane reads its own rows of W in x·Wᵀ, where the plain form's lanes read
 * one contiguous row): the copy of a Linear's weight is ~1 % of a GPU product's memory traffic. The default tables use
 * it for NVIDIA's x·Wᵀ and for lavapipe's from K = 2048 (autotune.ts); `tune` tries it.
 */
export const PLAIN_SUFFIX = ':plain';

/**
 * A variant name ending in ':k<S>' (S in 2..64, e.g. 'tiled-vec4:k8') splits a product with few workgroups over K
 * ("split-K"): up to S partial products over consecutive chunks of K, summed by one reduce pass (splitKPlan says how
 * far: only below SPLIT_K_TARGET_WORKGROUPS). It buys workgroups where the output is small beside K: vit_b_16's weight
 * gradients dW = dYᵀ·X at batch 32 are 36–144 blocks of 128×128 (an H200 has 132 SMs), measured at 7.4–22 TFLOP/s on
 * the H200 against 30 for a product with 1200 blocks; its 768-wide outputs (300 blocks) ran at 18–20.
 * - Aᵀ·B (dW), any family: both operands are stored k-major ([K, M], [K, N]), so a chunk of K is a contiguous block of
 *   each and the partials are one batched product of the base kernel. The chunks divide K; not with a bias.
 * - The other forms where the base runs as tiled-vec4: one dispatch whose workgroup layers each sum a chunk of K
 *   (a multiple of its k step) into layer t of the partials (the bias in layer 0); other families run unsplit.
 * Batched products run the base variant as it is. Exclusive with PLAIN_SUFFIX (which makes every product plain).
 */
export const SPLIT_K_PATTERN = /^(.*):k(\d+)$/;

/** The base variant and S of a ':k<S>' name, or null for a name without it (RangeError for S outside 2..64). */
export function splitKOf(name: string): { base: string; parts: number } | null {
  const m = name.match(SPLIT_K_PATTERN);
  if (!m) return null;
  const parts = Number(m[2]);
  if (!(parts >= 2 && parts <= 64)) throw new RangeError(`matmul: bad variant '${name}': ':k<S>' takes S in 2..64`);
  if (m[1].endsWith(PLAIN_SUFFIX)) throw new RangeError(`matmul: bad variant '${name}': '${PLAIN_SUFFIX}' and ':k<S>' exclude each other`);
  return { base: m[1], parts };
}

/** The number of K chunks a ':k<S>' variant uses for inner dimension K: the largest divisor of K that is at most S. */
export function splitKParts(K: number, S: number): number {
  for (let s = Math.min(S, K); s > 1; s--) if (K % s === 0) return s;
  return 1;
}

/** The kernel families, each its own WGSL file ('subgroup' runs as 'blocked' without the feature). */
export const MATMUL_VARIANTS: string[] = ['naive', 'tiled', 'tiled-vec4', 'blocked', 'blocked-vec4', 'subgroup'];

export interface MatmulConfig {
  family: 'naive' | 'tiled' | 'tiled-vec4' | 'blocked' | 'blocked-vec4' | 'subgroup';
  /** Outputs per invocation: rows × columns (blocked families). */
  tm: number;
  tn: number;
  /** Workgroup size x × y (blocked families). */
  wgx: number;
  wgy: number;
  /** PLAIN_SUFFIX: transposed operands are copied to their plain layout and the product runs without transposes. */
  plain?: boolean;
  /** ':k<S>': S, the most K chunks a product is split into (SPLIT_K_PATTERN); from resolveMatmulKernel, the chunks used. */
  splitK?: number;
}

/** Default register-block and workgroup shapes of the blocked families (tuned on lavapipe, see bench/results). */
const BLOCKED_DEFAULTS: Record<'tiled' | 'tiled-vec4' | 'blocked' | 'blocked-vec4' | 'subgroup', Omit<MatmulConfig, 'family'>> = {
  blocked: { tm: 4, tn: 4, wgx: 16, wgy: 4 },
  'blocked-vec4': { tm: 4, tn: 4, wgx: 16, wgy: 4 },
  // tiled: 4×4 outputs per invocation, 16×16 invocations = a 64×64 block of C
  tiled: { tm: 4, tn: 4, wgx: 16, wgy: 16 },
  // tiled-vec4: 8×8 per invocation as 2×2 blocks of 4×4, 16×16 invocations = 128×128 (a GPU's shape; not measured yet)
  'tiled-vec4': { tm: 8, tn: 8, wgx: 16, wgy: 16 },
  // subgroup: tm = A values per lane (rows per subgroup = tm·SG), tn = columns per lane, wgx unused (= SG)
  subgroup: { tm: 2, tn: 8, wgx: 0, wgy: 4 },
};

/**
 * Parse a variant name: a family, optionally with '@TMxTN/WGXxWGY' for the tiled and blocked ones
 * (e.g. 'blocked-vec4@8x4/64x1': 8 rows × 4 columns per invocation, workgroups of 64×1).
 */
export function parseMatmulVariant(name: string): MatmulConfig {
  // Parsed once per name (every matmul() asks, several times: host time per dispatch, bench/results/llvmpipe-host.md);
  // a copy each time, so a caller may change what it gets. Names that fail are not kept: they throw again.
  const known = parsedVariants.get(name);
  if (known) return { ...known };
  const cfg = parseVariantName(name);
  if (parsedVariants.size >= 1024) parsedVariants.clear();
  parsedVariants.set(name, cfg);
  return { ...cfg };
}

const parsedVariants = new Map<string, MatmulConfig>();

function parseVariantName(name: string): MatmulConfig {
  const split = splitKOf(name);
  if (split) {
    try {
      return { ...parseMatmulVariant(split.base), splitK: split.parts };
    } catch (e) {
      throw new RangeError((e as Error).message.replace(`'${split.base}'`, `'${name}'`));
    }
  }
  if (name.endsWith(PLAIN_SUFFIX)) {
    const base = name.slice(0, -PLAIN_SUFFIX.length);
    if (base.endsWith(PLAIN_SUFFIX)) throw new RangeError(`matmul: bad variant '${name}': '${PLAIN_SUFFIX}' once, at the end`);
    if (SPLIT_K_PATTERN.test(base)) throw new RangeError(`matmul: bad variant '${name}': '${PLAIN_SUFFIX}' and ':k<S>' exclude each other`);
    try {
      return { ...parseMatmulVariant(base), plain: true };
    } catch (e) {
      throw new RangeError((e as Error).message.replace(`'${base}'`, `'${name}'`)); // the name as given
    }
  }
  const [family, spec] = name.split('@');
  if (!MATMUL_VARIANTS.includes(family)) {
    throw new RangeError(`matmul: unknown variant '${name}' (known: ${MATMUL_VARIANTS.join(', ')})`);
  }
  if (family === 'naive') {
    if (spec !== undefined) throw new RangeError(`matmul: variant '${family}' takes no '@' parameters (got '${name}')`);
    return { family, tm: 1, tn: 1, wgx: 1, wgy: 1 };
  }
  const f = family as 'tiled' | 'tiled-vec4' | 'blocked' | 'blocked-vec4' | 'subgroup';
  if (spec === undefined) return { family: f, ...BLOCKED_DEFAULTS[f] };
  const m = spec.match(/^(\d+)x(\d+)\/(\d+)x(\d+)$/);
  if (!m) throw new RangeError(`matmul: bad variant '${name}': expected ${family}@TMxTN/WGXxWGY`);
  const [tm, tn, wgx, wgy] = m.slice(1).map(Number);
  const ok =
    tm >= 1 && tn >= 1 && tm <= 16 && tn <= 16 &&
    (f === 'subgroup' ? wgy >= 1 && wgy <= 32 : wgx * wgy >= 1 && wgx * wgy <= 256) &&
    // tiled: the staged A and B tiles (BK·(BM + BN + 2·pad) floats) must fit the 16 KiB of workgroup memory WebGPU guarantees.
    (f !== 'tiled' || tiledWorkgroupBytes(tm, tn, wgx, wgy) <= 16384) &&
    (f !== 'tiled-vec4' || ((tm === 4 || tm === 8) && (tn === 4 || tn === 8) && tiledVec4WorkgroupBytes(tm, tn, wgx, wgy) <= 16384));
  if (!ok || (f === 'blocked-vec4' && (tm % 4 !== 0 || tn % 4 !== 0))) {
    throw new RangeError(`matmul: bad variant '${name}': TM, TN in 1..16 (multiples of 4 for blocked-vec4; 4 or 8 for tiled-vec4), WGX·WGY in 1..256` +
      (f === 'tiled' || f === 'tiled-vec4' ? ', tiles within 16 KiB of workgroup memory' : ''));
  }
  return { family: f, tm, tn, wgx, wgy };
}

/** The tiled kernel's K step: 16 for blocks up to 64×64, else 8 (keeps workgroup memory at 8 KiB for 128×128). */
export function tiledBK(tm: number, tn: number, wgx: number, wgy: number): number {
  return tm * wgy * tn * wgx <= 64 * 64 ? 16 : 8;
}

/** Words of padding per staged row of the tiled kernel (32/BK: no shared-memory bank conflicts; matmul_tiled.wgsl). */
export function tiledPad(bk: number): number {
  return 32 / bk;
}

/** Bytes of workgroup memory the tiled kernel stages: BK rows of A (BM + pad words) and of B (BN + pad). */
export function tiledWorkgroupBytes(tm: number, tn: number, wgx: number, wgy: number): number {
  const bk = tiledBK(tm, tn, wgx, wgy);
  return bk * (tm * wgy + tn * wgx + 2 * tiledPad(bk)) * 4;
}

/** vec4s per staged row of the tiled-vec4 kernel for a block side of `side` values: side/4 padded to an odd count. */
export function tiledVec4Stride(side: number): number {
  const q = side / 4;
  return q % 2 === 0 ? q + 1 : q + 2;
}

/** Bytes of workgroup memory the tiled-vec4 kernel stages: 8 rows of A and of B, each padded to an odd vec4 count. */
export function tiledVec4WorkgroupBytes(tm: number, tn: number, wgx: number, wgy: number): number {
  return 8 * (tiledVec4Stride(tm * wgy) + tiledVec4Stride(tn * wgx)) * 16;
}

/**
 * Whether every vec4 load of the tiled-vec4 kernel is aligned: each operand is read along its contiguous dimension
 * (A [M, K] along k, A [K, M] along m, B [K, N] along n, B [N, K] along k). Unlike blocked-vec4, k needs no
 * alignment when neither operand is read along it (a Linear's dW = dYᵀ·X at an odd batch).
 */
export function tiledVec4Aligned(M: number, N: number, K: number, transA: boolean, transB: boolean): boolean {
  return (transA ? M % 4 === 0 : K % 4 === 0) && (transB ? K % 4 === 0 : N % 4 === 0);
}

/** Whether every vec4 load of the blocked-vec4 and tiled-vec4 kernels is aligned for this problem. */
export function vec4Aligned(M: number, N: number, K: number, transA: boolean, transB: boolean): boolean {
  return K % 4 === 0 && (!transA || M % 4 === 0) && (transB || N % 4 === 0);
}

/**
 * The subgroup size the subgroup kernels are compiled for on this device, or null where they do not run: no
 * 'subgroups' feature, no fixed size, or a lane layout other than the one they assume (Gpu.subgroupSize, probed once
 * when the device is made).
 */
export function subgroupSize(): number | null {
  return gpu().subgroupSize;
}

/**
 * The unrolled statements of shaders/matmul_subgroup.wgsl for RQ A values and TN columns per lane and
 * subgroup size SG (see the comment there for the variables).
 */
export function subgroupBody(rq: number, tn: number, sg: number): { SETUP: string; STEP: string; STORE: string } {
  const setup: string[] = [];
  const step: string[] = [];
  const store: string[] = [];
  for (let q = 0; q < rq; q++) setup.push(`let ao${q} = aOffset(aBase, m0 + ${q * sg}u + lane, M, K);`);
  for (let j = 0; j < tn; j++) setup.push(`let bo${j} = bOffset(bBase, nb + ${j * sg}u + lane, N, K);`);
  for (let r = 0; r < rq * sg; r++) setup.push(Array.from({ length: tn }, (_, j) => `var c${r}_${j} = 0.0;`).join(' '));
  for (let q = 0; q < rq; q++) step.push(`let a${q} = a[ao${q} + ka];`);
  for (let j = 0; j < tn; j++) step.push(`let b${j} = b[bo${j} + kb];`);
  for (let q = 0; q < rq; q++) {
    for (let l = 0; l < sg; l++) {
      const r = q * sg + l;
      step.push(`let s${r} = subgroupShuffle(a${q}, ${l}u);`);
      step.push(Array.from({ length: tn }, (_, j) => `c${r}_${j} = fma(s${r}, b${j}, c${r}_${j});`).join(' '));
    }
  }
  for (let r = 0; r < rq * sg; r++) {
    for (let j = 0; j < tn; j++) store.push(`store(t, m0 + ${r}u, nb + ${j * sg}u + lane, c${r}_${j});`);
  }
  const ind = (xs: string[], n: number) => xs.map((x) => ' '.repeat(n) + x).join('\n');
  return { SETUP: ind(setup, 2), STEP: ind(step, 4), STORE: ind(store, 2) };
}

/**
 * The adapter's default variant, adjusted to the problem when it is not named: a subgroup kernel computes blocks of
 * (tm·SG) rows × (tn·SG) columns with WGY subgroups per workgroup, so for an output narrower or shorter than that
 * (the per-head products of a small ViT's attention: 17×17, 17×16, 50×16 with SG 8 on lavapipe) the block
 * shrinks to fit: tn = ⌈N/SG⌉ when that is at most half the default, tm = 1 where two rows per lane would pad more than a quarter of the rows, and
 * no more subgroups per workgroup than there are row blocks. Measured on lavapipe (best of 7, 512 products each):
 * 50×16×50 6.6 ms as subgroup@2x2 against 17.0 as the full block or blocked, 17×16×17 1.65 ms as subgroup@1x2
 * against 8.0 / 1.75. Outputs under half a subgroup wide or tall go to blocked-vec4. A variant given with '@'
 * parameters is kept as it is. `sg`: the subgroup size (default: the device's).
 */
export function variantForShape(variant: string, M: number, N: number, sg: number | null = null): string {
  const split = splitKOf(variant);
  if (split) return `${variantForShape(split.base, M, N, sg)}:k${split.parts}`;
  if (variant.endsWith(PLAIN_SUFFIX)) return variantForShape(variant.slice(0, -PLAIN_SUFFIX.length), M, N, sg) + PLAIN_SUFFIX;
  const cfg = parseMatmulVariant(variant);
  if (cfg.family !== 'subgroup' || variant.includes('@')) return variant;
  const size = sg ?? subgroupSize();
  if (!size) return variant;
  if (N * 2 < size || M * 2 < size) return 'blocked-vec4';
  // Columns: ⌈N/SG⌉ per lane when that is at most half the default (an odd count past that measured slower than the
  // full, padded block: 50×50×16 took 11 ms as 2×7 and 8.4 ms as 2×8).
  const tn = Math.ceil(N / size) <= cfg.tn / 2 ? Math.ceil(N / size) : cfg.tn;
  const waste = (tm: number) => (Math.ceil(M / (tm * size)) * tm * size - M) / (Math.ceil(M / (tm * size)) * tm * size);
  const tm = cfg.tm > 1 && waste(cfg.tm) > 0.25 ? 1 : cfg.tm;
  const wgy = Math.max(1, Math.min(cfg.wgy, Math.ceil(M / (tm * size))));
  if (tm === cfg.tm && tn === cfg.tn && wgy === cfg.wgy) return variant;
  return `subgroup@${tm}x${tn}/0x${wgy}`;
}

/**
 * The tiled kernel's unrolled code: TM×TN accumulators as separate scalars (c_i_j) and the BK steps of the inner
 * product written out, so no array is indexed at run time. A GPU shader compiler may keep a loop and put an array
 * that it indexes dynamically in (slow, off-chip) local memory; named scalars always live in registers.
 */
export function tiledBody(tm: number, tn: number, wgx: number, wgy: number, bk: number): { DECL: string; INNER: string; STORE: string } {
  const sa = tm * wgy + tiledPad(bk); // the staged rows' strides (SA, SB in the shader)
  const sb = tn * wgx + tiledPad(bk);
  const decl: string[] = [];
  const inner: string[] = [];
  const store: string[] = [];
  for (let i = 0; i < tm; i++) decl.push(Array.from({ length: tn }, (_, j) => `var c${i}_${j} = 0.0;`).join(' '));
  for (let kk = 0; kk < bk; kk++) {
    inner.push(Array.from({ length: tm }, (_, i) => `let a${kk}_${i} = As[${kk * sa + i * wgy}u + lid.y];`).join(' '));
    inner.push(Array.from({ length: tn }, (_, j) => `let b${kk}_${j} = Bs[${kk * sb + j * wgx}u + lid.x];`).join(' '));
    for (let i = 0; i < tm; i++) inner.push(Array.from({ length: tn }, (_, j) => `c${i}_${j} = fma(a${kk}_${i}, b${kk}_${j}, c${i}_${j});`).join(' '));
  }
  for (let i = 0; i < tm; i++) {
    for (let j = 0; j < tn; j++) store.push(`store(t, m0 + lid.y + ${i * wgy}u, n0 + lid.x + ${j * wgx}u, c${i}_${j});`);
  }
  const ind = (xs: string[], n: number) => xs.map((x) => ' '.repeat(n) + x).join('\n');
  return { DECL: ind(decl, 2), INNER: ind(inner, 4), STORE: ind(store, 2) };
}

/**
 * The tiled-vec4 kernel's unrolled code (shaders/matmul_tiled_vec4.wgsl): accumulators c{r}_{h} as named vec4s (row r
 * of the invocation's TM, columns 4h..4h+3 of its TN), the 8 k steps of a staged tile written out with one vec4 read
 * of workgroup memory per 4 A values or 4 B values, and the stores.
 */
export function tiledVec4Body(tm: number, tn: number, wgx: number, wgy: number): Record<'PRELOAD' | 'STAGE' | 'PREFETCH' | 'DECL' | 'INNER' | 'STORE', string> {
  const rg = tm / 4;
  const cg = tn / 4;
  const sa4 = tiledVec4Stride(tm * wgy); // SA4, SB4 in the shader
  const sb4 = tiledVec4Stride(tn * wgx);
  const nt = wgx * wgy;
  // vec4 loads per invocation per tile: 2·BM of A and 2·BN of B (8 k values = 2 vec4s per row, or BM/4 per k)
  const la = Math.ceil((2 * tm * wgy) / nt);
  const lb = Math.ceil((2 * tn * wgx) / nt);
  const xyzw = ['x', 'y', 'z', 'w'];
  const preload: string[] = [];
  const stage: string[] = [];
  const prefetch: string[] = [];
  for (let l = 0; l < la; l++) {
    preload.push(`var ra${l} = loadA(aBase, m0, kBegin, li + ${l * nt}u);`);
    stage.push(`storeA(li + ${l * nt}u, ra${l});`);
    prefetch.push(`ra${l} = loadA(aBase, m0, k0 + BK, li + ${l * nt}u);`);
  }
  for (let l = 0; l < lb; l++) {
    preload.push(`var rb${l} = loadB(bBase, n0, kBegin, li + ${l * nt}u);`);
    stage.push(`storeB(li + ${l * nt}u, rb${l});`);
    prefetch.push(`rb${l} = loadB(bBase, n0, k0 + BK, li + ${l * nt}u);`);
  }
  const decl: string[] = [];
  const inner: string[] = [];
  const store: string[] = [];
  for (let r = 0; r < tm; r++) decl.push(Array.from({ length: cg }, (_, h) => `var c${r}_${h} = vec4<f32>(0.0);`).join(' '));
  for (let kk = 0; kk < 8; kk++) {
    inner.push(Array.from({ length: rg }, (_, g) => `let a${kk}_${g} = As[${kk * sa4 + g * wgy}u + ty];`).join(' '));
    inner.push(Array.from({ length: cg }, (_, h) => `let b${kk}_${h} = Bs[${kk * sb4 + h * wgx}u + tx];`).join(' '));
    for (let g = 0; g < rg; g++) {
      for (let i = 0; i < 4; i++) {
        const r = 4 * g + i;
        inner.push(Array.from({ length: cg }, (_, h) => `c${r}_${h} = fma(vec4<f32>(a${kk}_${g}.${xyzw[i]}), b${kk}_${h}, c${r}_${h});`).join(' '));
      }
    }
  }
  for (let g = 0; g < rg; g++) {
    for (let i = 0; i < 4; i++) {
      const r = 4 * g + i;
      for (let h = 0; h < cg; h++) {
        for (let j = 0; j < 4; j++) store.push(`store(t, m0 + ${g * 4 * wgy + i}u + 4u * ty, n0 + 4u * (${h * wgx}u + tx) + ${j}u, c${r}_${h}.${xyzw[j]});`);
      }
    }
  }
  const ind = (xs: string[], n: number) => xs.map((x) => ' '.repeat(n) + x).join('\n');
  return { PRELOAD: ind(preload, 2), STAGE: ind(stage, 4), PREFETCH: ind(prefetch, 6), DECL: ind(decl, 2), INNER: ind(inner, 4), STORE: ind(store, 2) };
}

/** Workgroups (x, y) of one product of M × N outputs under a resolved config (`sg`: the device's subgroup size). */
export function matmulGrid(cfg: MatmulConfig, M: number, N: number, sg: number | null = subgroupSize()): [number, number] {
  switch (cfg.family) {
    case 'naive':
      return [Math.ceil(N / 8), Math.ceil(M / 8)];
    case 'tiled':
    case 'tiled-vec4':
      return [Math.ceil(N / (cfg.tn * cfg.wgx)), Math.ceil(M / (cfg.tm * cfg.wgy))];
    case 'subgroup':
      return [Math.ceil(N / (sg! * cfg.tn)), Math.ceil(M / (cfg.tm * sg! * cfg.wgy))];
    default:
      return [Math.ceil(Math.ceil(N / cfg.tn) / cfg.wgx), Math.ceil(Math.ceil(M / cfg.tm) / cfg.wgy)];
  }
}

/**
 * A ':k<S>' variant splits a product only while it has fewer workgroups than this, and into no more parts than bring it
 * to about this many: ~8 per SM of an H100 or H200 (132 SMs), where a tiled-vec4 workgroup of 128×128 outputs fits
 * about twice per SM — four waves or more, so a last partial wave costs at most a quarter. vit_b_16's products at
 * batch 32: dW 36–144 workgroups (split 8 ways), the 768-wide outputs 300 (4 ways), the rest 900–1200 (not split).
 */
export const SPLIT_K_TARGET_WORKGROUPS = 1024;

/** How a ':k<S>' variant runs a product (splitKPlan): the number of K chunks and the chunk length. */
export interface SplitKPlan {
  /** 'chunks': Aᵀ·B as a batched product over contiguous blocks of K (any family, parts dividing K); 'kc': one
   * tiled-vec4 dispatch whose workgroup layers each sum a chunk of kc (a multiple of its k step, 8). */
  how: 'chunks' | 'kc';
  parts: number;
  kc: number;
}

/**
 * The split a ':k<S>' variant makes of one unbatched M × N × K product, or null where it runs unsplit: S is an upper
 * bound, lowered to what brings the workgroups to SPLIT_K_TARGET_WORKGROUPS (none where they are that many already).
 * Aᵀ·B splits in any family (parts: the largest divisor of K not above that); the other forms only where the base
 * runs as tiled-vec4 (its kernel takes a chunk per layer of workgroups), into chunks of a multiple of 8.
 */
export function splitKPlan(variant: string, M: number, N: number, K: number, transA = false, transB = false): SplitKPlan | null {
  const split = splitKOf(variant);
  if (!split) return null;
  const cfg = resolveMatmulKernel(variantForShape(split.base, M, N), M, N, K, transA, transB);
  const [gx, gy] = matmulGrid(cfg, M, N);
  const want = Math.min(split.parts, Math.ceil(SPLIT_K_TARGET_WORKGROUPS / (gx * gy)));
  if (want < 2) return null;
  if (transA && !transB) {
    const parts = splitKParts(K, want);
    return parts > 1 ? { how: 'chunks', parts, kc: K / parts } : null;
  }
  if (cfg.family !== 'tiled-vec4') return null;
  const kc = Math.ceil(K / want / 8) * 8;
  const parts = Math.ceil(K / kc);
  return parts > 1 ? { how: 'kc', parts, kc } : null;
}

/**
 * The kernel a variant actually runs for this problem on this device: blocked-vec4 falls back to blocked and
 * tiled-vec4 to tiled when their vec4 loads would be misaligned, subgroup to tiled-vec4 (aligned) or blocked without a
 * fixed subgroup size.
 */
export function resolveMatmulKernel(variant: string, M: number, N: number, K: number, transA = false, transB = false): MatmulConfig {
  // ':k<S>': the base kernel, on each chunk's product where the split applies (splitKPlan); splitK: the parts
  const split = splitKOf(variant);
  if (split) {
    const plan = splitKPlan(variant, M, N, K, transA, transB);
    if (!plan) return resolveMatmulKernel(split.base, M, N, K, transA, transB);
    return { ...resolveMatmulKernel(split.base, M, N, plan.how === 'chunks' ? plan.kc : K, transA, transB), splitK: plan.parts };
  }
  // with PLAIN_SUFFIX the kernel multiplies the copies, without transposes
  if (variant.endsWith(PLAIN_SUFFIX)) return { ...resolveMatmulKernel(variant.slice(0, -PLAIN_SUFFIX.length), M, N, K), plain: true };
  const cfg = parseMatmulVariant(variant);
  if (cfg.family === 'blocked-vec4' && !vec4Aligned(M, N, K, transA, transB)) return { ...cfg, family: 'blocked' };
  if (cfg.family === 'tiled-vec4' && !tiledVec4Aligned(M, N, K, transA, transB)) {
    // the scalar-load tiled kernel with the same blocks where they fit its workgroup memory, else its default
    return tiledWorkgroupBytes(cfg.tm, cfg.tn, cfg.wgx, cfg.wgy) <= 16384 ? { ...cfg, family: 'tiled' } : { family: 'tiled', ...BLOCKED_DEFAULTS.tiled };
  }
  // Without a fixed subgroup size: tiled-vec4 where its loads are aligned (it beat blocked on both CPU adapters measured:
  // lavapipe 5.0 vs 3.8 GFLOP/s at 1024³, SwiftShader 0.9–2.2 vs 0.24), else blocked.
  if (cfg.family === 'subgroup' && !subgroupSize()) {
    return tiledVec4Aligned(M, N, K, transA, transB) ? { family: 'tiled-vec4', ...BLOCKED_DEFAULTS['tiled-vec4'] } : { family: 'blocked', ...BLOCKED_DEFAULTS.blocked };
  }
  return cfg;
}

interface Dims {
  batch: number;
  batchShape: number[];
  M: number;
  N: number;
  K: number;
  bBatched: boolean;
}

function checkShapes(a: GpuArray, b: GpuArray, opts: MatmulOptions): Dims {
  const { transA = false, transB = false, bias } = opts;
  const shapes = `a ${fmt(a.shape)} × b ${fmt(b.shape)}`;
  const flags = transA || transB ? ` (${[transA && 'transA', transB && 'transB'].filter(Boolean).join(', ')})` : '';
  if (a.rank < 2 || b.rank < 2) throw new RangeError(`matmul: operands must be at least 2-D: ${shapes}`);
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const M = transA ? ac : ar;
  const K = transA ? ar : ac;
  const N = transB ? br : bc;
  const Kb = transB ? bc : br;
  const batchShape = a.shape.slice(0, -2);
  const bBatched = b.rank > 2;
  if (bBatched && fmt(b.shape.slice(0, -2)) !== fmt(batchShape)) {
    throw new RangeError(`matmul: batch dimensions differ: ${shapes} (b must have a's batch dimensions or be 2-D)`);
  }
  if (K !== Kb) throw new RangeError(`matmul: inner dimensions differ: ${shapes}${flags}`);
  if (bias && (bias.rank !== 1 || bias.size !== N)) {
    throw new RangeError(`matmul: bias ${fmt(bias.shape)} does not match N = ${N} of ${shapes}${flags}`);
  }
  return { batch: batchShape.reduce((x, y) => x * y, 1), batchShape, M, N, K, bBatched };
}

/**
 * C = op(A) · op(B) (+ bias), op(X) = Xᵀ when transX.
 * a: [...batch, M, K] ([...batch, K, M] if transA); b: [...batch, K, N] ([...batch, N, K] if transB), or
 * b 2-D (shared across a's batch). bias: [N]. Returns [...batch, M, N].
 */
export function matmul(a: GpuArray, b: GpuArray, opts: MatmulOptions = {}): GpuArray {
  return matmulWith(a, b, opts);
}

/** matmul(), where `auto` (a variant chosen for the caller, not named by the user) stands in for the adapter's choice. */
function matmulWith(a: GpuArray, b: GpuArray, opts: MatmulOptions, auto?: string): GpuArray {
  const { transA = false, transB = false, bias, alpha = 1 } = opts;
  if (!Number.isFinite(alpha)) throw new RangeError(`matmul: alpha must be a finite number, got ${alpha}`);
  const d = checkShapes(a, b, opts);
  const { N, K } = d;
  // A 2-D b shared over the batch with a non-transposed a (every Linear layer: [B, tokens, in] · W) is one product of
  // batch·M rows, since a's and the output's batch rows are contiguous: one tall matmul instead of `batch` short
  // ones (a subgroup or tiled block of rows no longer straddles two images). Up to 8·65535 rows, so the row grid of
  // the smallest-block kernel still fits one dispatch dimension.
  const fold = !d.bBatched && !transA && d.batch > 1 && d.batch * d.M <= 8 * 65535;
  const batch = fold ? 1 : d.batch;
  const M = fold ? d.batch * d.M : d.M;
  const g = gpu();
  const chosen = opts.variant ?? auto ?? matmulVariantForProduct(g.adapterKey, transA, transB, K);
  parseMatmulVariant(chosen); // a bad name fails here, before any copy or allocation
  if (d.batch * d.M * N === 0) return GpuArray.empty([...d.batchShape, d.M, N], 'matmul');
  // The product of x and y by a suffixed variant's base (':plain', ':k<S>'): a named variant runs as named; the adapter's
  // choice is fitted to that product (variantForShape).
  const byBase = (x: GpuArray, y: GpuArray, base: string, o: MatmulOptions = opts) => (opts.variant === undefined ? matmulWith(x, y, o, base) : matmulWith(x, y, { ...o, variant: base }));
  if ((transA || transB) && chosen.endsWith(PLAIN_SUFFIX)) {
    const base = chosen.slice(0, -PLAIN_SUFFIX.length);
    const a2 = transA ? transpose(a) : a;
    try {
      const b2 = transB ? transpose(b) : b;
      try {
        return byBase(a2, b2, base, { ...opts, transA: false, transB: false });
      } finally {
        if (b2 !== b) b2.dispose();
      }
    } finally {
      if (a2 !== a) a2.dispose();
    }
  }
  const split = splitKOf(chosen);
  // ':k<S>' (splitKPlan): unbatched products without a bias in the 'chunks' way, the 'kc' one with or without
  let kcPlan: SplitKPlan | null = null;
  if (split) {
    const plan = batch === 1 ? splitKPlan(chosen, M, N, K, transA, transB) : null;
    if (plan?.how === 'chunks' && a.rank === 2 && b.rank === 2 && !bias) {
      // a 2-D Aᵀ·B (A [K, M], B [K, N]) as `parts` products over consecutive K chunks, one batched call of the base
      // variant into [parts, M, N], then summed (alpha applied in each chunk's store: the sum is linear)
      const a3 = a.view([plan.parts, plan.kc, M]);
      const b3 = b.view([plan.parts, plan.kc, N]);
      let partial: GpuArray;
      try {
        partial = byBase(a3, b3, split.base);
      } finally {
        a3.dispose();
        b3.dispose();
      }
      try {
        return sum(partial, [0]);
      } finally {
        partial.dispose();
      }
    }
    if (plan?.how !== 'kc') return byBase(a, b, split.base);
    kcPlan = plan;
  }
  const variant = opts.variant ?? variantForShape(chosen, M, N);
  // with a 'kc' split: the partials [parts, M, N] (workgroup layer t sums k in [t·kc, t·kc + kc); the bias in layer 0)
  const out = kcPlan ? GpuArray.empty([kcPlan.parts, M, N], 'matmul partials') : GpuArray.empty([...d.batchShape, d.M, N], 'matmul');
  const { cfg, p, gx, gy } = launchPlan(variant, M, N, K, transA, transB, !!bias);
  const buffers = [a.buffer, b.buffer, (bias ?? a).buffer, out.buffer];
  const maxZ = g.limits.maxComputeWorkgroupsPerDimension;
  const label = `matmul ${cfg.family} ${batch > 1 ? `${batch}×` : ''}${M}×${N}×${K}${transA ? ' tA' : ''}${transB ? ' tB' : ''}`;
  if (kcPlan) {
    // (parts ≤ 64 layers: one dispatch)
    dispatch(`${label} split-K ${kcPlan.parts}`, p, buffers, packUniforms([['u32', M], ['u32', N], ['u32', K], ['u32', 0], ['u32', 0], ['f32', alpha], ['u32', kcPlan.kc]]), [gx, gy, kcPlan.parts]);
    try {
      const summed = sum(out, [0]);
      if (fmt(summed.shape) === fmt([...d.batchShape, d.M, N])) return summed;
      const shaped = summed.view([...d.batchShape, d.M, N]); // a folded batch
      summed.dispose();
      return shaped;
    } finally {
      out.dispose();
    }
  }
  for (let z0 = 0; z0 < batch; z0 += maxZ) {
    const u = packUniforms([['u32', M], ['u32', N], ['u32', K], ['u32', d.bBatched ? 1 : 0], ['u32', z0], ['f32', alpha], ['u32', 0]]);
    dispatch(label, p, buffers, u, [gx, gy, Math.min(maxZ, batch - z0)]);
  }
  return out;
}

interface LaunchPlan {
  cfg: MatmulConfig;
  p: GPUComputePipeline;
  gx: number;
  gy: number;
}

/** launchPlan's answers per device (a device's pipelines die with it), by variant, shape and forms. */
const launchPlans = new WeakMap<GPUDevice, Map<string, LaunchPlan>>();

/**
 * The kernel, pipeline and grid that run one product of this shape by this variant on this device: worked out once
 * (resolving the variant, the template values and the pipeline key cost host time on every matmul() otherwise).
 */
function launchPlan(variant: string, M: number, N: number, K: number, transA: boolean, transB: boolean, hasBias: boolean): LaunchPlan {
  const device = gpu().device;
  let plans = launchPlans.get(device);
  if (!plans) launchPlans.set(device, (plans = new Map()));
  const key = `${variant}|${M}|${N}|${K}|${transA}|${transB}|${hasBias}`;
  let plan = plans.get(key);
  if (!plan) {
    if (plans.size >= 4096) plans.clear();
    plans.set(key, (plan = makeLaunchPlan(variant, M, N, K, transA, transB, hasBias)));
  }
  return plan;
}

function makeLaunchPlan(variant: string, M: number, N: number, K: number, transA: boolean, transB: boolean, hasBias: boolean): LaunchPlan {
  const cfg = resolveMatmulKernel(variant, M, N, K, transA, transB);
  const sg = subgroupSize();
  const defs: Record<string, string | number> = { TRANS_A: String(transA), TRANS_B: String(transB), HAS_BIAS: String(hasBias) };
  let generated: (() => Record<string, string>) | undefined;
  const shader = `matmul_${cfg.family.replace('-', '_')}`;
  if (cfg.family === 'tiled') {
    const bk = tiledBK(cfg.tm, cfg.tn, cfg.wgx, cfg.wgy);
    Object.assign(defs, { TM: cfg.tm, TN: cfg.tn, WGX: cfg.wgx, WGY: cfg.wgy, BK: bk, PAD: tiledPad(bk) });
    generated = () => tiledBody(cfg.tm, cfg.tn, cfg.wgx, cfg.wgy, bk);
  } else if (cfg.family === 'tiled-vec4') {
    Object.assign(defs, { TM: cfg.tm, TN: cfg.tn, WGX: cfg.wgx, WGY: cfg.wgy, SA4: tiledVec4Stride(cfg.tm * cfg.wgy), SB4: tiledVec4Stride(cfg.tn * cfg.wgx) });
    generated = () => tiledVec4Body(cfg.tm, cfg.tn, cfg.wgx, cfg.wgy);
  } else if (cfg.family === 'subgroup') {
    Object.assign(defs, { SG: sg!, RM: cfg.tm * sg!, CN: cfg.tn * sg!, WGY: cfg.wgy });
    generated = () => subgroupBody(cfg.tm, cfg.tn, sg!);
  } else if (cfg.family !== 'naive') {
    Object.assign(defs, { TM: cfg.tm, TN: cfg.tn, WGX: cfg.wgx, WGY: cfg.wgy });
  }
  const [gx, gy] = matmulGrid(cfg, M, N, sg);
  return { cfg, p: pipeline(shader, defs, 'main', generated), gx, gy };
}
