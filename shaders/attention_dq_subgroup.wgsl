// Attention backward, dQ, "subgroup" variant (see attention_fwd_subgroup.wgsl for the layout): one subgroup owns
// QR = RQ·SG query rows and walks the keys in tiles of KT = TN·SG. Per tile, lane l holds s_r_j = q_r·k_j and
// t_r_j = dOs_r·v_j for all QR rows against its TN keys (query and dOs vec4s broadcast with constant-lane
// shuffles), then dS = exp(scale·s + mask - lse_r) ∘ (t - Di_r). dQ_r += Σ_key dS_r,key · k_key: each key's dS
// is broadcast from the lane that owns it and lane l accumulates the vec4 column chunks c = l + u·SG (u < DL4)
// of all QR rows. dQ = scale·dQ at the end. The launcher writes out the statements (subgroupDqBody).
enable subgroups;
//#include "attention_bwd_inputs_vec4"
@group(0) @binding(7) var<storage, read_write> dq: array<f32>;

const D: u32 = {{D}}u;
const D4: u32 = {{D4}}u;
const SG: u32 = {{SG}}u;
const QR: u32 = {{QR}}u;  // query rows per subgroup
const KT: u32 = {{KT}}u;  // keys per tile
const HAS_MASK: bool = {{HAS_MASK}};

@compute @workgroup_size(SG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let bh = wid.y + wid.z * nwg.y;
  if (bh >= P.bh) { return; }  // uniform per workgroup
  let lane = lid.x;
  let n = P.n;
  let dl = P.d4;
  let row0 = wid.x * QR;
  let base = bh * n * D4;
  let mb = (bh / P.h) * P.mask_b + (bh % P.h) * P.mask_h;
  if (HAS_MASK) { _ = mask[0]; }
{{SETUP}}
  for (var j0 = 0u; j0 < n; j0 += KT) {
{{KEYS}}
    for (var d4 = 0u; d4 < dl; d4++) {
{{DOT}}
    }
{{UPDATE}}
{{ACC}}
  }
{{STORE}}
}
