// AdamW step, in place, on SLOTS parameters at once, with torch.optim.AdamW's (single-tensor, foreach=False)
// arithmetic per element:
//   p ← p·(1 − lr·wd)                          decoupled weight decay, first
//   m ← m + (1 − β1)·(g − m)                   torch's exp_avg.lerp_(g, 1 − β1)
//   v ← v·β2 + (1 − β2)·g²
//   p ← p − (lr/bc1) · m / (sqrt(v)/sqrt(bc2) + eps)
// with bc1 = 1 − β1^t, bc2 = 1 − β2^t computed on the host in float64.
// Parameter s has its own four bindings (param{s}, grad{s}, m{s}, v{s} at 1 + 4s …) and owns the invocations
// [end(s−1), end(s)) of one flat index space, so one dispatch updates several tensors: a model's ~150 small updates
// would otherwise be ~150 dispatches per step (host time per dispatch: bench/results/llvmpipe-host.md). The branch
// on s is uniform except in the one workgroup that straddles two tensors. The bindings and the per-slot branches are
// generated (adamw.ts adamwSlots).
struct Params { decay: f32, one_minus_beta1: f32, beta2: f32, one_minus_beta2: f32, step_size: f32, sqrt_bc2: f32, eps: f32, total: u32, ends: array<vec4<u32>, (SLOTS + 3u) / 4u> }
@group(0) @binding(0) var<uniform> P: Params;
const SLOTS: u32 = {{SLOTS}}u;  // tensors per dispatch (the bindings below)
{{BINDINGS}}

// (p, g, m, v) → (new p, new m, new v)
fn adamw(p0: f32, g: f32, m0: f32, v0: f32) -> vec3<f32> {
  let p = p0 * P.decay;
  let mi = m0 + P.one_minus_beta1 * (g - m0);
  let vi = v0 * P.beta2 + P.one_minus_beta2 * g * g;
  let denom = sqrt(vi) / P.sqrt_bc2 + P.eps;
  return vec3<f32>(p - P.step_size * (mi / denom), mi, vi);
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= P.total) { return; }
{{BODY}}
}
