// Attention backward, dK and dV, "subgroup" variant (see attention_fwd_subgroup.wgsl): one subgroup owns
// KR = RQ·SG key rows and walks the queries in tiles of QT = TN·SG (no atomics). Per tile, lane l holds
// s_r_j = k_r·q_j and t_r_j = v_r·dOs_j for all KR keys against its TN queries (key and value vec4s broadcast
// with constant-lane shuffles), P = exp(scale·s + mask - lse_j), dS = P ∘ (t - Di_j). Then for each query of
// the tile its P and dS are broadcast from the lane that owns it, and lane l accumulates the vec4 column chunks
// c = l + u·SG (u < DL4) of all KR keys: dV_r += P_r,i · dOs_i, dK_r += dS_r,i · q_i. dK = scale·dK at the end.
// The launcher writes out the statements (subgroupDkvBody).
enable subgroups;
//#include "attention_bwd_inputs_vec4"
@group(0) @binding(7) var<storage, read_write> dk: array<f32>;
@group(0) @binding(8) var<storage, read_write> dv: array<f32>;

const D: u32 = {{D}}u;
const D4: u32 = {{D4}}u;
const SG: u32 = {{SG}}u;
const KR: u32 = {{KR}}u;  // key rows per subgroup
const QT: u32 = {{QT}}u;  // queries per tile
const HAS_MASK: bool = {{HAS_MASK}};

@compute @workgroup_size(SG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let bh = wid.y + wid.z * nwg.y;
  if (bh >= P.bh) { return; }  // uniform per workgroup
  let lane = lid.x;
  let n = P.n;
  let dl = P.d4;
  let col0 = wid.x * KR;
  let base = bh * n * D4;
  let mb = (bh / P.h) * P.mask_b + (bh % P.h) * P.mask_h;
  if (HAS_MASK) { _ = mask[0]; }
{{SETUP}}
  for (var i0 = 0u; i0 < n; i0 += QT) {
{{QUERIES}}
    for (var d4 = 0u; d4 < dl; d4++) {
{{DOT}}
    }
{{UPDATE}}
{{ACC}}
  }
{{STORE}}
}
