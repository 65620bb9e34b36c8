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

fn team_sum(lid: u32, v: f32) -> f32 {
  return team_sum2(lid, vec2<f32>(v, 0.0)).x;
}
