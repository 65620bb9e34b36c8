// Attention backward, dK and dV, "blocked" variant (register-blocked, for CPU adapters; see
// attention_fwd_blocked.wgsl): each invocation owns R key rows and walks the query rows in blocks of C (no
// atomics). Per block: s_r_c = k_r·q_c and t_r_c = v_r·dOs_c (one loop over the D4 vec4 chunks), P =
// exp(scale·s + mask - lse_c), dS = P ∘ (t - Di_c), then dV_r += Σ_c P_r_c dOs_c and dK_r += Σ_c dS_r_c q_c
// (a loop over D4 loading C query and C dOs vec4s). dK = scale·dK at the end. The launcher writes out the
// statements over r and c (src/kernels/attention.ts, blockedDkvBody). q, k, v, dOs: rows of D4 vec4s
// (zero-padded when D % 4 != 0); dk, dv are written with the unpadded row length D.
//#include "attention_bwd_inputs_vec4"
@group(0) @binding(7) var<storage, read_write> dk: array<f32>;
@group(0) @binding(8) var<storage, read_write> dv: array<f32>;

const D: u32 = {{D}}u;
const D4: u32 = {{D4}}u;
const R: u32 = {{R}}u;    // key rows per invocation
const C: u32 = {{C}}u;    // query rows per block
const WG: u32 = {{WG}}u;
const HAS_MASK: bool = {{HAS_MASK}};

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let bh = wid.y + wid.z * nwg.y;
  if (bh >= P.bh) { return; }  // uniform per workgroup; rows past n compute on row n - 1 and store nothing
  let n = P.n;
  let dl = P.d4;
  let col0 = (wid.x * WG + lid.x) * R;
  let base = bh * n * D4;
  let mb = (bh / P.h) * P.mask_b + (bh % P.h) * P.mask_h;
  if (HAS_MASK) { _ = mask[0]; }
  // Per key row r: ko_r, mc_r (mask column), accumulators gk_r, gv_r.
{{SETUP}}
  for (var i0 = 0u; i0 < n; i0 += C) {
{{QUERIES}}
    for (var d4 = 0u; d4 < dl; d4++) {
{{DOT}}
    }
    // p_r_c = P, ds_r_c = P ∘ (dP - Di), 0 for queries past n.
{{UPDATE}}
    for (var d4 = 0u; d4 < dl; d4++) {
{{ACC}}
    }
  }
{{STORE}}
}
