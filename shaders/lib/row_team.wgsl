// Row teams: T invocations (a power of two dividing WG) work on one row and reduce through workgroup
// memory; every invocation of the team gets the result. T == 1 (one invocation per row) skips every
// barrier: the fast case on CPU adapters, where barriers are slow. Shared by the row kernels.
const WG: u32 = {{WG}}u;
const T: u32 = {{T}}u;
var<workgroup> sh: array<vec2<f32>, WG>;

fn team_max(lid: u32, v: f32) -> f32 {
  if (T == 1u) { return v; }
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
