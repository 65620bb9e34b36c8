// out[i] = value for i < n. T: f32, or vec4<f32> when the size is a multiple of 4 (n then counts vec4s).
struct Params { n: u32, value: f32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> out: array<{{T}}>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= P.n) { return; }
  out[i] = {{T}}(P.value);
}
