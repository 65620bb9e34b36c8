// In-place accumulation (gradients): target[i] += alpha * x[i], same shape. T: f32, or vec4<f32> when the size is a
// multiple of 4 (n then counts vec4s).
struct Params { n: u32, alpha: f32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<{{T}}>;
@group(0) @binding(2) var<storage, read> x: array<{{T}}>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= P.n) { return; }
  dst[i] = dst[i] + P.alpha * x[i];
}
