// Attention backward for the 'subgroup-saved' variant: dK, dV and dS in one pass, laid out as
// attention_dkv_subgroup.wgsl (one subgroup owns KR = RQ·SG key rows and walks the queries in tiles of
// QT = TN·SG; no atomics), but the scores S = scale·q·kᵀ + mask come from the forward (`scores`, written by
// attention_fwd_subgroup.wgsl), so the tile's only dot products are t_r_j = v_r·dOs_j: P = exp(S - lse_j),
// dS = P ∘ (t - Di_j); dV_r += P_r,i · dOs_i, dK_r += dS_r,i · q_i (dK = scale·dK at the end), and dS goes to `dsb`
// [B·H, N, N] (query rows), from which the launcher computes dQ = scale·dS·K with a matmul.
// The mask is already in S (masked entries are -inf, so P = 0 there). The launcher writes out the statements
// (savedDkvBody).
enable subgroups;

struct Params { n: u32, bh: u32, h: u32, mask_b: u32, mask_h: u32, scale: f32, pad: u32, d4: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> scores: array<f32>;  // [B·H, N, N], from the forward
@group(0) @binding(4) var<storage, read> stats: array<f32>;   // (lse_safe, Di) per row
@group(0) @binding(5) var<storage, read> dos: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> dk: array<f32>;
@group(0) @binding(7) var<storage, read_write> dv: array<f32>;
@group(0) @binding(8) var<storage, read_write> dsb: array<f32>;  // dS [B·H, N, N], query rows

const D: u32 = {{D}}u;
const D4: u32 = {{D4}}u;
const SG: u32 = {{SG}}u;
const KR: u32 = {{KR}}u;  // key rows per subgroup
const QT: u32 = {{QT}}u;  // queries per tile

@compute @workgroup_size(SG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let bh = wid.y + wid.z * nwg.y;
  if (bh >= P.bh) { return; }  // uniform per workgroup
  let lane = lid.x;
  let n = P.n;
  let dl = P.d4;
  let col0 = wid.x * KR;
  let base = bh * n * D4;
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
