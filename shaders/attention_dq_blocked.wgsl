// Attention backward, dQ, "blocked" variant (register-blocked, for CPU adapters; see
// attention_fwd_blocked.wgsl for the shape and why): each invocation owns R query rows and walks the keys in
// blocks of C. Per block: s_r_c = q_r·k_c and t_r_c = dOs_r·v_c (one loop over the D4 vec4 chunks),
// P = exp(scale·s + mask - lse_r), dS = P ∘ (t - Di_r), then dQ_r += Σ_c dS_r_c k_c (a loop over D4 loading
// C key vec4s). dQ = scale·dQ at the end. The launcher writes out the statements over r and c
// (src/kernels/attention.ts, blockedDqBody). q, k, v, dOs: rows of D4 vec4s (zero-padded when D % 4 != 0);
// dq is written with the unpadded row length D.
//#include "attention_bwd_inputs_vec4"
@group(0) @binding(7) var<storage, read_write> dq: array<f32>;

const D: u32 = {{D}}u;
const D4: u32 = {{D4}}u;
const R: u32 = {{R}}u;    // query rows per invocation
const C: u32 = {{C}}u;    // keys per block
const WG: u32 = {{WG}}u;
const HAS_MASK: bool = {{HAS_MASK}};

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let bh = wid.y + wid.z * nwg.y;
  if (bh >= P.bh) { return; }  // uniform per workgroup; rows past n compute on row n - 1 and store nothing
  let n = P.n;
  let dl = P.d4;
  let row0 = (wid.x * WG + lid.x) * R;
  let base = bh * n * D4;
  let mb = (bh / P.h) * P.mask_b + (bh % P.h) * P.mask_h;
  if (HAS_MASK) { _ = mask[0]; }
  // Per row r: qo_r, lse_r, di_r, mr_r (mask row), accumulator a_r.
{{SETUP}}
  for (var j0 = 0u; j0 < n; j0 += C) {
{{KEYS}}
    for (var d4 = 0u; d4 < dl; d4++) {
{{DOT}}
    }
    // ds_r_c = P ∘ (dP - Di), 0 for keys past n.
{{UPDATE}}
    for (var d4 = 0u; d4 < dl; d4++) {
{{ACC}}
    }
  }
{{STORE}}
}
