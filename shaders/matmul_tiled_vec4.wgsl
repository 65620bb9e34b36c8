// matmul, tiled variant with vec4 loads everywhere (the shape GPU BLAS libraries use for f32 without tensor
// cores). A workgroup of WGX×WGY invocations computes a BM×BN block of C (BM = TM·WGY, BN = TN·WGX; TM, TN
// are 4 or 8); each invocation TM×TN outputs as TM/4 × TN/4 sub-blocks of 4×4: rows g·4·WGY + 4·ty + i and
// columns 4·(h·WGX + tx) + j, so that per k step it reads its A values as TM/4 vec4s and its B values as TN/4
// vec4s from workgroup memory (one 16-byte load per 4 values; adjacent invocations read adjacent vec4s of B)
// for TM·TN FMAs.
//
// K is walked in steps of BK = 8. Both tiles are staged in workgroup memory as [k][m] and [k][n] (vec4 rows
// along m / n); every staged vec4 is written whole by one invocation (a write to one component of a vector may
// access the whole vector in WGSL — Metal's and D3D's compilers may read-modify-write it, gpuweb issue 2112 — so
// four invocations filling one vec4 would race there):
//   A [K, M] (TRANS_A):      one vec4 load of 4 m values, stored as one vec4;
//   B [K, N]:                one vec4 load of 4 n values, stored as one vec4;
//   A [M, K] (k contiguous): 4 scalar loads, rows m..m+3 at one k, stored as one vec4 (lanes run along k: a warp
//                            reads 8 consecutive k of 4 rows per load, whole 32-byte sectors);
//   B [N, K] (TRANS_B, a Linear's forward x·Wᵀ): as A [M, K].
// The shared rows are padded by one vec4 (odd strides: in each quarter-warp phase of a vec4 store the 8 lanes' k rows
// fall in different banks).
// The next tile is loaded into registers before the current one is used (its latency hides behind the
// FMAs), then stored after the second barrier.
//
// The launcher picks this kernel only when every vec4 load is aligned — K % 4 == 0 where A or B is read
// along k, M % 4 == 0 with TRANS_A, N % 4 == 0 for B [K, N] (tiledVec4Aligned) — and runs 'tiled' otherwise. Out-of-range
// rows, columns and k are staged as zeros. The inner product and the stores are generated unrolled
// (matmul.ts tiledVec4Body): accumulators c{r}_{h} (row r of the invocation, column vec4 h) as named vec4s, and
// so are the staging loads (ra{l}, rb{l}: ⌈2·BM/NT⌉ and ⌈2·BN/NT⌉ vec4s per invocation per tile).
// Layout, batching and transposes as in matmul_naive.wgsl.
//#include "matmul_io_vec4"
const TM = {{TM}}u;
const TN = {{TN}}u;
const WGX = {{WGX}}u;
const WGY = {{WGY}}u;
const BK = 8u;
const BM = TM * WGY;
const BN = TN * WGX;
const NT = WGX * WGY;
// vec4s per staged row of A and B: padded to an odd count (16·SA4 ≡ 16 mod 32 words apart: a warp's k-fastest
// component stores, two k4 groups of 16 rows, then fill the 32 banks once)
const SA4 = {{SA4}}u;
const SB4 = {{SB4}}u;
// vec4 loads per tile per operand: BK·BM/4 either way (2 per row of A [M, K], BM/4 per k of A [K, M])

var<workgroup> As: array<vec4<f32>, BK * SA4>;   // [k][m/4]
var<workgroup> Bs: array<vec4<f32>, BK * SB4>;   // [k][n/4]

// Elements first + r·stride (r < count ≤ 4; zeros after) of a (fromA) or b, float indices into the vec4 bindings:
// one k of 4 consecutive rows of A [M, K] or B [N, K].
fn gather4(fromA: bool, first: u32, stride: u32, count: u32) -> vec4<f32> {
  var x = vec4<f32>(0.0);
  for (var r = 0u; r < 4u; r++) {
    if (r < count) {
      let i = first + r * stride;
      if (fromA) { x[r] = a[i / 4u][i % 4u]; } else { x[r] = b[i / 4u][i % 4u]; }
    }
  }
  return x;
}

// The l-th vec4 of A this invocation stages for the tile at k0 (zeros outside the matrix): with TRANS_A 4 m values of
// one k (one load), else one k of the rows m..m+3 (4 loads), the vec4 staged at [k][m/4] either way.
fn loadA(aBase: u32, m0: u32, k0: u32, e: u32) -> vec4<f32> {
  if (e >= 2u * BM) { return vec4<f32>(0.0); }
  if (TRANS_A) {
    let k = k0 + e / (BM / 4u);
    let m4 = m0 / 4u + e % (BM / 4u);
    if (k < P.K && m4 < P.M / 4u) { return a[aBase + k * (P.M / 4u) + m4]; }
  } else {
    let m = m0 + 4u * (e / BK);
    let k = k0 + e % BK;
    if (k < P.K && m < P.M) { return gather4(true, 4u * aBase + m * P.K + k, P.K, min(4u, P.M - m)); }
  }
  return vec4<f32>(0.0);
}

fn loadB(bBase: u32, n0: u32, k0: u32, e: u32) -> vec4<f32> {
  if (e >= 2u * BN) { return vec4<f32>(0.0); }
  if (TRANS_B) {
    let n = n0 + 4u * (e / BK);
    let k = k0 + e % BK;
    if (k < P.K && n < P.N) { return gather4(false, 4u * bBase + n * P.K + k, P.K, min(4u, P.N - n)); }
  } else {
    let k = k0 + e / (BN / 4u);
    let n4 = n0 / 4u + e % (BN / 4u);
    if (k < P.K && n4 < P.N / 4u) { return b[bBase + k * (P.N / 4u) + n4]; }
  }
  return vec4<f32>(0.0);
}

fn storeA(e: u32, v: vec4<f32>) {
  if (e >= 2u * BM) { return; }
  if (TRANS_A) {
    As[(e / (BM / 4u)) * SA4 + e % (BM / 4u)] = v;
  } else {
    As[(e % BK) * SA4 + e / BK] = v;
  }
}

fn storeB(e: u32, v: vec4<f32>) {
  if (e >= 2u * BN) { return; }
  if (TRANS_B) {
    Bs[(e % BK) * SB4 + e / BK] = v;
  } else {
    Bs[(e / (BN / 4u)) * SB4 + e % (BN / 4u)] = v;
  }
}

//#include "matmul_store"

@compute @workgroup_size(WGX, WGY)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
  let t = wg.z + P.z0;
  let m0 = wg.y * BM;
  let n0 = wg.x * BN;
  // Split-K (P.KC > 0, a multiple of BK): one product, whose layer t of workgroups sums k in [t·KC, t·KC + KC) into
  // layer t of c — the partials, which the launcher sums. Tiles never straddle two chunks, so the loads' bounds stay
  // those of the matrix. Otherwise layer t is product t of the batch, over all of K.
  let split = P.KC > 0u;
  let kBegin = select(0u, t * P.KC, split);
  let kEnd = select(P.K, min(P.K, kBegin + P.KC), split);
  let aBase = select(t * P.M * P.K / 4u, 0u, split);
  let bBase = select(t * P.K * P.N * P.bBatched / 4u, 0u, split);
  let tx = lid.x;
  let ty = lid.y;
  let li = ty * WGX + tx;
  // the first tile's vec4s in registers ra{l}, rb{l} (named, not an indexed array: see tiledVec4Body)
{{PRELOAD}}
{{DECL}}
  for (var k0 = kBegin; k0 < kEnd; k0 += BK) {
{{STAGE}}
    workgroupBarrier();
    // the next tile's loads are issued now and wait in registers while this tile's FMAs run
    if (k0 + BK < kEnd) {
{{PREFETCH}}
    }
{{INNER}}
    workgroupBarrier();
  }
{{STORE}}
}
