// matmul, register-blocked variant (scalar loads, any shape): each invocation computes a TM×TN block
// of C in registers, with no workgroup memory and no barriers (what suits lavapipe, where a barrier is
// costly). Per k it loads TM values of A and TN of B for TM·TN FMAs. Loads past the matrix edges are
// clamped to the last row/column (valid memory; those outputs are never stored), so the k loop has no
// branches. The workgroup is WGX×WGY invocations; with WGY = 1 every invocation of a workgroup shares
// its rows of A (uniform loads). Layout and transposes as in matmul_naive.wgsl.
//#include "matmul_io"
const TM = {{TM}}u;
const TN = {{TN}}u;

@compute @workgroup_size({{WGX}}, {{WGY}})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
  let M = P.M;
  let N = P.N;
  let K = P.K;
  let t = wg.z + P.z0;
  let m0 = gid.y * TM;
  let n0 = gid.x * TN;
  if (m0 >= M || n0 >= N) { return; }
  let aBase = t * M * K;
  let bBase = t * K * N * P.bBatched;
  // Per-row / per-column offsets and k strides, edge-clamped.
  var aOff: array<u32, TM>;
  var bOff: array<u32, TN>;
  var aStep = 1u;
  var bStep = N;
  if (TRANS_A) { aStep = M; }
  if (TRANS_B) { bStep = 1u; }
  for (var r = 0u; r < TM; r++) {
    let m = min(m0 + r, M - 1u);
    aOff[r] = aBase + select(m * K, m, TRANS_A);
  }
  for (var j = 0u; j < TN; j++) {
    let n = min(n0 + j, N - 1u);
    bOff[j] = bBase + select(n, n * K, TRANS_B);
  }
  var acc: array<f32, TM * TN>;
  for (var k = 0u; k < K; k++) {
    var av: array<f32, TM>;
    var bv: array<f32, TN>;
    for (var r = 0u; r < TM; r++) { av[r] = a[aOff[r] + k * aStep]; }
    for (var j = 0u; j < TN; j++) { bv[j] = b[bOff[j] + k * bStep]; }
    for (var r = 0u; r < TM; r++) {
      for (var j = 0u; j < TN; j++) { acc[r * TN + j] = fma(av[r], bv[j], acc[r * TN + j]); }
    }
  }
  for (var r = 0u; r < TM; r++) {
    let m = m0 + r;
    for (var j = 0u; j < TN; j++) {
      let n = n0 + j;
      if (m < M && n < N) {
        var s = P.alpha * acc[r * TN + j];
        if (HAS_BIAS) { s += bias[n]; }
        c[(t * M + m) * N + n] = s;
      }
    }
  }
}
