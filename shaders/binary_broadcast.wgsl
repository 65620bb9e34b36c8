// Elementwise binary op with NumPy broadcasting. The launcher merges dims (src/kernels/elementwise.ts
// mergeDims) so the output is viewed as {{RANK}} dims (<= 8): shape[d], with element strides sa[d]/sb[d]
// into a and b (0 where that input is broadcast along d). Each thread decomposes its output index.
struct Params {
  n: u32, p0: u32, p1: u32, p2: u32,
  shape: array<vec4<u32>, 2>,
  sa: array<vec4<u32>, 2>,
  sb: array<vec4<u32>, 2>,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

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
  var rem = i;
  var ia = 0u;
  var ib = 0u;
  for (var d = {{RANK}}u; d > 0u; d--) {
    let k = d - 1u;
    let s = P.shape[k / 4u][k % 4u];
    let idx = rem % s;
    rem = rem / s;
    ia += idx * P.sa[k / 4u][k % 4u];
    ib += idx * P.sb[k / 4u][k % 4u];
  }
  let x = a[ia];
  let y = b[ib];
  out[i] = {{OP}};
}
