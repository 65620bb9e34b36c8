// Elementwise unary op on a dense f32 array: out[i] = OP(x[i]). {{OP}} is a WGSL expression in `v`
// (chosen by src/kernels/elementwise.ts); affine uses the uniforms: P.scale * v + P.shift. T is f32, or vec4<f32>
// when the size is a multiple of 4 and OP reads the same on vectors (then n counts vec4s).
// tanh's argument is clamped to ±15 (tanh(15) rounds to 1 in f32) so no backend overflows exp().
struct Params { n: u32, scale: f32, shift: f32, pad: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<{{T}}>;
@group(0) @binding(2) var<storage, read_write> out: array<{{T}}>;

fn sigmoid_f32(v: f32) -> f32 {
  // Both branches only ever exponentiate a non-positive number: no overflow, no 1 - 1 cancellation.
  let e = exp(-abs(v));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), v >= 0.0);
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= P.n) { return; }
  let v = x[i];
  out[i] = {{OP}};
}
