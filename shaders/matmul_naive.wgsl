// matmul, naive variant: one output element per invocation, straight from global memory.
// C[t, m, n] = alpha · sum_k opA(A)[t, m, k] · opB(B)[t, k, n] (+ bias[n]); opX transposes when TRANS_X.
// A is [M, K] ([K, M] if TRANS_A); B is [K, N] ([N, K] if TRANS_B), batch t = gid.z + z0; B is shared
// over the batch when bBatched == 0. Transposes are index math only.
//#include "matmul_io"

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
  s *= P.alpha;
  if (HAS_BIAS) { s += bias[n]; }
  c[(t * M + m) * N + n] = s;
}
