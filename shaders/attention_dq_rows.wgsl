// Attention backward, dQ, "rows" variant: one invocation per query row, one pass over all keys.
// P_ij = exp(scale·q_i·k_j + mask_ij - lse_i) recomputed; dP_ij = dOs_i·v_j (dOs = headScale·dO);
// dS = P ∘ (dP - Di); dQ_i = scale · Σ_j dS_ij k_j.
//#include "attention_bwd_inputs"
@group(0) @binding(7) var<storage, read_write> dq: array<f32>;

const D: u32 = {{D}}u;
const WG: u32 = {{WG}}u;
const HAS_MASK: bool = {{HAS_MASK}};

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let DL = {{DLOOP}};  // loop bound over D: the constant D (unrolled, arrays in registers) or P.d (software adapters: no unroll)
  let bh = wid.y + wid.z * nwg.y;
  let n = P.n;
  let row = wid.x * WG + lid.x;
  if (bh >= P.bh || row >= n) { return; }
  let base = bh * n * D;
  let mrow = (bh / P.h) * P.mask_b + (bh % P.h) * P.mask_h + row * n;
  var qr: array<f32, D>;
  var gr: array<f32, D>;
  var acc: array<f32, D>;
  for (var d = 0u; d < DL; d++) {
    qr[d] = q[base + row * D + d] * P.scale;
    gr[d] = dos[base + row * D + d];
  }
  let lse = stats[2u * (bh * n + row)];
  let di = stats[2u * (bh * n + row) + 1u];
  for (var j = 0u; j < n; j++) {
    let kb = base + j * D;
    var s = 0.0;
    var dp = 0.0;
    for (var d = 0u; d < DL; d++) {
      s += qr[d] * k[kb + d];
      dp += gr[d] * v[kb + d];
    }
    if (HAS_MASK) { s += mask[mrow + j]; }
    let ds = exp(s - lse) * (dp - di);
    for (var d = 0u; d < DL; d++) { acc[d] += ds * k[kb + d]; }
  }
  for (var d = 0u; d < DL; d++) { dq[base + row * D + d] = acc[d] * P.scale; }
}
