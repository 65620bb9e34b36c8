// Row teams: T invocations work on one row and reduce together; every invocation of the team gets the result.
// Two kinds (chosen by rowPlan, src/kernels/softmax.ts):
// - shared-memory teams: T (a power of two dividing WG) consecutive invocations reduce through workgroup memory,
//   log2 T barriers per reduction. T == 1 (one invocation per row) skips every barrier: the fast case on CPU
//   adapters, where barriers are slow.
// - subgroup teams (SUBGROUP_TEAM): the team is one subgroup, T = the adapter's fixed subgroup size, and reduces with
//   subgroupMax/subgroupAdd: no barrier and no workgroup memory ("a warp per row" on NVIDIA). Lanes are consecutive
//   local_invocation_index values, as in matmul_subgroup.wgsl. The shader then starts with `enable subgroups;`
//   (its ENABLE placeholder) and SG_MAX / SG_ADD name those builtins; otherwise they name the stand-ins below, which
//   the constant branch never calls (a device without the feature compiles no subgroup builtin).
// Every invocation calls the team functions in uniform control flow (after its row loops, whatever its row).
//
// Blocked row sums (row_block_stride): an invocation's share of a row is m = ⌈n/T⌉ terms. Summed one after another in
// f32, the running total grows to the whole share and every add rounds against it: the error grows like m·u in the
// worst case (u = 2⁻²⁴), and like it in practice too where the terms do not average out (a positive sum absorbs the
// terms below half an ulp of the total: softmax over 100 000 columns was off by 1.1e-4 relative). So the row loops
// sum blocks of B = max(64, ⌈√m⌉) consecutive terms of the share into a fresh accumulator and add each block's sum to
// the total: at most B + m/B ≤ 2·max(64, √m) rounding steps reach any term, plus log2 T in the team reduction
// (against m − 1 sequentially), and with random rounding the error grows like m^(1/4) rather than √m. For m ≤ 64 it is
// one block, the plain sum. A loop over the share, with stride = row_block_stride(n):
//   for (var i0 = lane; i0 < n; i0 += stride) { var b = 0.0; for (var i = i0; i < min(i0 + stride, n); i += T) { b += … } s += b; }
const WG: u32 = {{WG}}u;
const T: u32 = {{T}}u;
const SUBGROUP_TEAM: bool = {{SUBGROUP_TEAM}};
var<workgroup> sh: array<vec2<f32>, WG>;

fn no_subgroup_max(v: f32) -> f32 { return v; }
fn no_subgroup_add(v: vec2<f32>) -> vec2<f32> { return v; }

fn team_max(lid: u32, v: f32) -> f32 {
  if (T == 1u) { return v; }
  if (SUBGROUP_TEAM) { return {{SG_MAX}}(v); }
  sh[lid].x = v;
  for (var s = T / 2u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lid % T < s) { sh[lid].x = max(sh[lid].x, sh[lid + s].x); }
  }
  workgroupBarrier();
  let r = sh[lid - lid % T].x;
  workgroupBarrier();
  return r;
}

fn team_sum2(lid: u32, v: vec2<f32>) -> vec2<f32> {
  if (T == 1u) { return v; }
  if (SUBGROUP_TEAM) { return {{SG_ADD}}(v); }
  sh[lid] = v;
  for (var s = T / 2u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lid % T < s) { sh[lid] += sh[lid + s]; }
  }
  workgroupBarrier();
  let r = sh[lid - lid % T];
  workgroupBarrier();
  return r;
}

// The index stride of one block of a blocked row sum over n columns (see above): B·T, B = max(64, ⌈√⌈n/T⌉⌉).
fn row_block_stride(n: u32) -> u32 {
  let m = (n + T - 1u) / T;
  return max(64u, u32(ceil(sqrt(f32(m))))) * T;
}

fn team_sum(lid: u32, v: f32) -> f32 {
  return team_sum2(lid, vec2<f32>(v, 0.0)).x;
}
