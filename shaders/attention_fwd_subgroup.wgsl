// Fused attention forward, "subgroup" variant (needs the 'subgroups' feature and a fixed subgroup size SG):
// one subgroup (= one workgroup) owns QR = RQ·SG query rows of one (b, h) and walks the keys in tiles of
// KT = TN·SG. The score tile is computed like the subgroup matmul (shaders/matmul_subgroup.wgsl): lane l
// loads RQ query vec4s (rows q·SG + l) and TN key vec4s (keys j·SG + l) per d4 chunk, and every query vec4
// is broadcast to all lanes with a constant-lane subgroupShuffle, so lane l holds the scores of all QR rows
// against its TN keys (s_r_j). Online softmax: the tile's row max and row sum are subgroupMax/subgroupAdd
// over the lanes (every lane then holds the same m_r, l_r). P·V: for each key of the tile its probability
// p_r is broadcast from the lane that owns it, and lane l accumulates the output columns d = l + u·SG
// (u < DL) of all QR rows: o_r_u += p_r · v[key, d], scalar loads that are contiguous across lanes.
// The launcher (src/kernels/attention.ts, subgroupForwardBody) writes out the statements over q, r, j, u;
// the loops over d4 and over the SG lanes of a key group keep runtime bounds (compile time on lavapipe).
// Every lane takes part in every shuffle and reduction: no early return except a whole-workgroup one, rows
// and keys past n are clamped (computed, never stored; their scores are -inf).
// S = scale·q·kᵀ + mask; out = headScale[h] · softmax(S)·V; lse = logsumexp(S); an all -inf row gives 0, -inf.
// Variant 'subgroup-saved' (training): the kernel also writes S itself to `scores` [B·H, N, N] (binding 8, declared
// by the launcher only then), so the backward reads it instead of recomputing q·kᵀ.
enable subgroups;

struct Params { n: u32, bh: u32, h: u32, mask_b: u32, mask_h: u32, scale: f32, neg_inf: f32, d4: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> v: array<f32>;      // rows of DP = 4·D4 floats (zero-padded)
@group(0) @binding(4) var<storage, read> mask: array<f32>;   // bound to v when HAS_MASK is false
@group(0) @binding(5) var<storage, read> hscale: array<f32>; // bound to v when HAS_HS is false
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read_write> lse: array<f32>;
{{SCORES_DECL}}

const D: u32 = {{D}}u;    // head dimension (row length of out)
const D4: u32 = {{D4}}u;  // vec4 chunks per padded row of q, k, v
const SG: u32 = {{SG}}u;  // subgroup size = workgroup size
const QR: u32 = {{QR}}u;  // query rows per subgroup
const KT: u32 = {{KT}}u;  // keys per tile
const HAS_MASK: bool = {{HAS_MASK}};
const HAS_HS: bool = {{HAS_HS}};
const SAVE: bool = {{SAVE}};  // scores written ('subgroup-saved' in training)

@compute @workgroup_size(SG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let bh = wid.y + wid.z * nwg.y;
  if (bh >= P.bh) { return; }  // uniform per workgroup
  let lane = lid.x;
  let n = P.n;
  let dl = P.d4;
  let row0 = wid.x * QR;
  let NEG_INF = P.neg_inf;
  let base = bh * n * D4;
  let vbase = bh * n * D4 * 4u;
  let hh = bh % P.h;
  let mb = (bh / P.h) * P.mask_b + hh * P.mask_h;
  var hs = 1.0;
  if (HAS_HS) { hs = hscale[hh]; }
  if (HAS_MASK) { _ = mask[0]; }
{{SETUP}}
  for (var j0 = 0u; j0 < n; j0 += KT) {
{{KEYS}}
    for (var d4 = 0u; d4 < dl; d4++) {
{{DOT}}
    }
{{UPDATE}}
{{PV}}
  }
{{STORE}}
}
