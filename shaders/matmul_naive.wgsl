// matmul, naive variant: one output element per invocation, straight from global memory.
// C[t, m, n] = sum_k opA(A)[t, m, k] · opB(B)[t, k, n] (+ bias[n]); opX transposes when TRANS_X.
// A is [M, K] ([K, M] if TRANS_A); B is [K, N] ([N, K] if TRANS_B), batch t = gid.z + z0; B is shared
// over the batch when bBatched == 0. Transposes are index math only.
struct Params { M: u32, N: u32, K: u32, bBatched: u32, z0: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;   // bound to a when HAS_BIAS is false
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

const TRANS_A: bool = {{TRANS_A}};
const TRANS_B: bool = {{TRANS_B}};
const HAS_BIAS: bool = {{HAS_BIAS}};

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n = gid.x;
  let m = gid.y;
  let t = gid.z + P.z0;
  let M = P.M;
  let N = P.N;
  let K = P.K;
  if (m >= M || n >= N) { return; }
  let aBase = t * M * K;
  let bBase = t * K * N * P.bBatched;
  var s = 0.0;
  for (var k = 0u; k < K; k++) {
    var ai = aBase + m * K + k;
    if (TRANS_A) { ai = aBase + k * M + m; }
    var bi = bBase + k * N + n;
    if (TRANS_B) { bi = bBase + n * K + k; }
    s = fma(a[ai], b[bi], s);
  }
  if (HAS_BIAS) { s += bias[n]; }
  c[(t * M + m) * N + n] = s;
}
