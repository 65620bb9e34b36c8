// Elementwise binary op, fast path for two inputs of the same shape: out[i] = OP(a[i], b[i]).
// {{OP}} is a WGSL expression in `x` (from a) and `y` (from b), chosen by src/kernels/elementwise.ts. T is f32, or
// vec4<f32> when the size is a multiple of 4 and OP reads the same on vectors (then n counts vec4s).
struct Params { n: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> a: array<{{T}}>;
@group(0) @binding(2) var<storage, read> b: array<{{T}}>;
@group(0) @binding(3) var<storage, read_write> out: array<{{T}}>;

// x^y as NumPy/Math.pow for the cases that matter: a negative base with an integer exponent keeps
// its sign for odd exponents (WGSL's pow is only defined for x >= 0).
fn pow_f32(x: f32, y: f32) -> f32 {
  if (y == 0.0) { return 1.0; }
  let m = pow(abs(x), y);
  let odd = y == floor(y) && fract(y * 0.5) != 0.0;
  return select(m, -m, x < 0.0 && odd);
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= P.n) { return; }
  let x = a[i];
  let y = b[i];
  out[i] = {{OP}};
}
