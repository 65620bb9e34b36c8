// matmul, tiled variant: the classic GPU kernel. A workgroup of 16×16 invocations computes a 64×64 block
// of C; each invocation a 4×4 sub-block (rows ty + 16i, columns tx + 16j). K is walked in steps of BK:
// the A and B tiles are staged in workgroup memory (zero-padded past the matrix edges), with barriers.
// Good on real GPUs; slow on lavapipe, where barriers are expensive. Layout and transposes as in
// matmul_naive.wgsl.
struct Params { M: u32, N: u32, K: u32, bBatched: u32, z0: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

const TRANS_A: bool = {{TRANS_A}};
const TRANS_B: bool = {{TRANS_B}};
const HAS_BIAS: bool = {{HAS_BIAS}};
const BM = 64u;
const BN = 64u;
const BK = 16u;
const T = 16u;          // invocations per side
const NT = T * T;       // invocations per workgroup

var<workgroup> As: array<f32, BK * BM>;   // [k][m]
var<workgroup> Bs: array<f32, BK * BN>;   // [k][n]

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
  let M = P.M;
  let N = P.N;
  let K = P.K;
  let t = wg.z + P.z0;
  let m0 = wg.y * BM;
  let n0 = wg.x * BN;
  let aBase = t * M * K;
  let bBase = t * K * N * P.bBatched;
  let li = lid.y * T + lid.x;
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < K; k0 += BK) {
    // Stage the tiles; consecutive invocations read consecutive addresses in either layout.
    for (var e = li; e < BK * BM; e += NT) {
      var mm = e / BK;
      var kk = e % BK;
      if (TRANS_A) { kk = e / BM; mm = e % BM; }
      let m = m0 + mm;
      let k = k0 + kk;
      var v = 0.0;
      if (m < M && k < K) {
        var ai = aBase + m * K + k;
        if (TRANS_A) { ai = aBase + k * M + m; }
        v = a[ai];
      }
      As[kk * BM + mm] = v;
    }
    for (var e = li; e < BK * BN; e += NT) {
      var kk = e / BN;
      var nn = e % BN;
      if (TRANS_B) { nn = e / BK; kk = e % BK; }
      let n = n0 + nn;
      let k = k0 + kk;
      var v = 0.0;
      if (n < N && k < K) {
        var bi = bBase + k * N + n;
        if (TRANS_B) { bi = bBase + n * K + k; }
        v = b[bi];
      }
      Bs[kk * BN + nn] = v;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      var av: array<f32, 4>;
      var bv: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) { av[i] = As[kk * BM + lid.y + T * i]; }
      for (var j = 0u; j < 4u; j++) { bv[j] = Bs[kk * BN + lid.x + T * j]; }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) { acc[i][j] = fma(av[i], bv[j], acc[i][j]); }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + lid.y + T * i;
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + lid.x + T * j;
      if (m < M && n < N) {
        var s = acc[i][j];
        if (HAS_BIAS) { s += bias[n]; }
        c[(t * M + m) * N + n] = s;
      }
    }
  }
}
