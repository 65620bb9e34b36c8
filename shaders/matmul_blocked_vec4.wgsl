// matmul, register-blocked variant with vec4 loads: each invocation computes a TM×TN block of C
// (TM, TN multiples of 4) in registers, with no workgroup memory and no barriers. k advances 4 at a time:
// the block's A values for k..k+3 arrive as TM vec4s (one per row, along k) or, with TRANS_A, as 4·TM/4
// vec4s along m; B's as 4·TN/4 vec4s along n or, with TRANS_B, TN vec4s along k. Either way they are
// rearranged into av[r] (A row r, k..k+3) and bw[kk·Q + j] (B row k+kk, columns 4j..4j+3) for
// TM·TN·4 FMAs. The launcher only picks this kernel when every vec4 load is aligned:
// K % 4 == 0, M % 4 == 0 if TRANS_A, N % 4 == 0 unless TRANS_B. Edge loads are clamped to the last
// valid row/vec4 (outputs from them are never stored). Layout and transposes as in matmul_naive.wgsl.
//#include "matmul_io_vec4"
const TM = {{TM}}u;
const TN = {{TN}}u;
const Q = TN / 4u;   // vec4s per row of the C block
const TM4 = TM / 4u;

@compute @workgroup_size({{WGX}}, {{WGY}})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
  let M = P.M;
  let N = P.N;
  let K = P.K;
  let K4 = K / 4u;
  let M4 = M / 4u;   // used with TRANS_A only (M % 4 == 0 then)
  let N4 = N / 4u;   // used without TRANS_B only (N % 4 == 0 then)
  let t = wg.z + P.z0;
  let m0 = gid.y * TM;
  let n0 = gid.x * TN;
  if (m0 >= M || n0 >= N) { return; }
  // Offsets in vec4 units, edge-clamped.
  let aBase = t * M * K4;
  let bBase = t * K * N * P.bBatched / 4u;
  var aOff: array<u32, TM>;   // !TRANS_A: row r's start; TRANS_A: entries 0..TM4-1 are m-vec4 indices
  var bOff: array<u32, TN>;   // TRANS_B: row n's start; !TRANS_B: entries 0..Q-1 are n-vec4 indices
  for (var r = 0u; r < TM; r++) {
    if (TRANS_A) {
      aOff[r] = aBase + min(m0 / 4u + r, M4 - 1u);
    } else {
      aOff[r] = aBase + min(m0 + r, M - 1u) * K4;
    }
  }
  for (var j = 0u; j < TN; j++) {
    if (TRANS_B) {
      bOff[j] = bBase + min(n0 + j, N - 1u) * K4;
    } else {
      bOff[j] = bBase + min(n0 / 4u + j, N4 - 1u);
    }
  }
  var acc: array<vec4<f32>, TM * Q>;
  for (var k4 = 0u; k4 < K4; k4++) {
    let k = k4 * 4u;
    var av: array<vec4<f32>, TM>;      // av[r][kk] = A(m0 + r, k + kk)
    var bw: array<vec4<f32>, 4 * Q>;   // bw[kk * Q + j][i] = B(k + kk, n0 + 4j + i)
    if (TRANS_A) {
      for (var kk = 0u; kk < 4u; kk++) {
        for (var p = 0u; p < TM4; p++) {
          let v = a[aOff[p] + (k + kk) * M4];
          av[4u * p][kk] = v.x;
          av[4u * p + 1u][kk] = v.y;
          av[4u * p + 2u][kk] = v.z;
          av[4u * p + 3u][kk] = v.w;
        }
      }
    } else {
      for (var r = 0u; r < TM; r++) { av[r] = a[aOff[r] + k4]; }
    }
    if (TRANS_B) {
      for (var j = 0u; j < Q; j++) {
        for (var i = 0u; i < 4u; i++) {
          let v = b[bOff[4u * j + i] + k4];
          bw[j][i] = v.x;
          bw[Q + j][i] = v.y;
          bw[2u * Q + j][i] = v.z;
          bw[3u * Q + j][i] = v.w;
        }
      }
    } else {
      for (var kk = 0u; kk < 4u; kk++) {
        for (var j = 0u; j < Q; j++) { bw[kk * Q + j] = b[bOff[j] + (k + kk) * N4]; }
      }
    }
    for (var kk = 0u; kk < 4u; kk++) {
      for (var r = 0u; r < TM; r++) {
        let s = vec4<f32>(av[r][kk]);
        for (var j = 0u; j < Q; j++) { acc[r * Q + j] = fma(s, bw[kk * Q + j], acc[r * Q + j]); }
      }
    }
  }
  for (var r = 0u; r < TM; r++) {
    let m = m0 + r;
    for (var j = 0u; j < Q; j++) {
      for (var i = 0u; i < 4u; i++) {
        let n = n0 + 4u * j + i;
        if (m < M && n < N) {
          var s = P.alpha * acc[r * Q + j][i];
          if (HAS_BIAS) { s += bias[n]; }
          c[(t * M + m) * N + n] = s;
        }
      }
    }
  }
}
