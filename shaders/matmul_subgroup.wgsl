// matmul, subgroup variant (needs the 'subgroups' feature and a fixed subgroup size SG). Register
// blocking as in matmul_blocked.wgsl, but rows of A are shared through the subgroup instead of being
// loaded by every invocation: a subgroup of SG lanes computes a block of RM = RQ·SG rows × SG·TN columns.
// Per k, lane l loads RQ values of A (rows q·SG + l) and TN values of B (columns j·SG + l, so consecutive
// lanes read consecutive columns), then each of the RM rows' A value is broadcast to every lane
// (subgroupShuffle with a constant lane) for RM·TN FMAs per lane. On lavapipe a per-invocation load
// costs a scalar load per lane, while a constant-lane broadcast is one register shuffle.
//
// The per-k body is fully unrolled: the SETUP, STEP and STORE placeholders are straight-line statements the
// launcher generates for RQ, TN and SG (src/kernels/matmul.ts, subgroupBody): lavapipe's compiler does
// not unroll loops this large, and a constant lane is what makes a shuffle a broadcast. Variables:
// ao{q}/bo{j} = edge-clamped offsets of lane l's row q·SG + l of A and column j·SG + l of B;
// c{r}_{j} = accumulator for row m0 + r, column nb + j·SG + lane.
//
// Lanes are consecutive local_invocation_index values (lane = local_invocation_id.x, workgroup x = SG);
// there is no early return, as every lane must take part in the shuffles. Layout and transposes as in
// matmul_naive.wgsl.
enable subgroups;

//#include "matmul_io"
const SG = {{SG}}u;    // subgroup size
const RM = {{RM}}u;    // rows per subgroup (RQ·SG)
const CN = {{CN}}u;    // columns per subgroup (SG·TN)
const WGY = {{WGY}}u;  // subgroups per workgroup

fn aOffset(base: u32, m: u32, M: u32, K: u32) -> u32 {
  return base + select(min(m, M - 1u) * K, min(m, M - 1u), TRANS_A);
}

fn bOffset(base: u32, n: u32, N: u32, K: u32) -> u32 {
  return base + select(min(n, N - 1u), min(n, N - 1u) * K, TRANS_B);
}

//#include "matmul_store"

@compute @workgroup_size(SG, WGY)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
  let M = P.M;
  let N = P.N;
  let K = P.K;
  let t = wg.z + P.z0;
  let lane = lid.x;
  let m0 = (wg.y * WGY + lid.y) * RM;
  let nb = wg.x * CN;
  let aBase = t * M * K;
  let bBase = t * K * N * P.bBatched;
  let aStep = select(1u, M, TRANS_A);
  let bStep = select(N, 1u, TRANS_B);
{{SETUP}}
  for (var k = 0u; k < K; k++) {
    let ka = k * aStep;
    let kb = k * bStep;
{{STEP}}
  }
{{STORE}}
}
