// Copy rows of D floats into rows of DP ≥ D floats, zero-filling the rest (vec4-aligned rows for the
// 'blocked' attention kernels when D % 4 != 0).
struct Params { total: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

const D: u32 = {{D}}u;
const DP: u32 = {{DP}}u;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= P.total) { return; }
  let c = i % DP;
  dst[i] = select(0.0, src[(i / DP) * D + min(c, D - 1u)], c < D);
}
