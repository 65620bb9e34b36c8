// AdamW step, in place, with torch.optim.AdamW's (single-tensor, foreach=False) arithmetic:
//   p ← p·(1 − lr·wd)                          decoupled weight decay, first
//   m ← m + (1 − β1)·(g − m)                   torch's exp_avg.lerp_(g, 1 − β1)
//   v ← v·β2 + (1 − β2)·g²
//   p ← p − (lr/bc1) · m / (sqrt(v)/sqrt(bc2) + eps)
// with bc1 = 1 − β1^t, bc2 = 1 − β2^t computed on the host in float64.
struct Params { n: u32, decay: f32, one_minus_beta1: f32, beta2: f32, one_minus_beta2: f32, step_size: f32, sqrt_bc2: f32, eps: f32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= P.n) { return; }
  let g = grad[i];
  let p = param[i] * P.decay;
  let mi = m[i] + P.one_minus_beta1 * (g - m[i]);
  let vi = v[i] * P.beta2 + P.one_minus_beta2 * g * g;
  let denom = sqrt(vi) / P.sqrt_bc2 + P.eps;
  param[i] = p - P.step_size * (mi / denom);
  m[i] = mi;
  v[i] = vi;
}
