// Attention backward, dK and dV, "rows" variant: one invocation per key row j, one pass over all
// query rows i (no atomics). P_ij recomputed from q, k and the saved lse; dP_ij = dOs_i·v_j;
// dS = P ∘ (dP - Di); dV_j = Σ_i P_ij dOs_i; dK_j = scale · Σ_i dS_ij q_i.
//#include "attention_bwd_inputs"
@group(0) @binding(7) var<storage, read_write> dk: array<f32>;
@group(0) @binding(8) var<storage, read_write> dv: array<f32>;

const D: u32 = {{D}}u;
const WG: u32 = {{WG}}u;
const HAS_MASK: bool = {{HAS_MASK}};

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let DL = {{DLOOP}};  // loop bound over D: the constant D (unrolled, arrays in registers) or P.d (software adapters: no unroll)
  let bh = wid.y + wid.z * nwg.y;
  let n = P.n;
  let col = wid.x * WG + lid.x;
  if (bh >= P.bh || col >= n) { return; }
  let base = bh * n * D;
  let mbase = (bh / P.h) * P.mask_b + (bh % P.h) * P.mask_h + col;
  var kr: array<f32, D>;
  var vr: array<f32, D>;
  var gk: array<f32, D>;
  var gv: array<f32, D>;
  for (var d = 0u; d < DL; d++) {
    kr[d] = k[base + col * D + d] * P.scale;
    vr[d] = v[base + col * D + d];
  }
  for (var i = 0u; i < n; i++) {
    let qb = base + i * D;
    var s = 0.0;
    var dp = 0.0;
    for (var d = 0u; d < DL; d++) {
      s += q[qb + d] * kr[d];
      dp += dos[qb + d] * vr[d];
    }
    if (HAS_MASK) { s += mask[mbase + i * n]; }
    let st = 2u * (bh * n + i);
    let p = exp(s - stats[st]);
    let ds = p * (dp - stats[st + 1u]);
    for (var d = 0u; d < DL; d++) {
      gv[d] += p * dos[qb + d];
      gk[d] += ds * q[qb + d];
    }
  }
  for (var d = 0u; d < DL; d++) {
    dk[base + col * D + d] = gk[d] * P.scale;
    dv[base + col * D + d] = gv[d];
  }
}
