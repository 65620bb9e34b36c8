// Fused attention forward, "blocked" variant (register-blocked, for CPU adapters such as lavapipe):
// each invocation owns R consecutive query rows of one (b, h) and walks the keys in blocks of C. For a
// block it computes the R×C scores like a matmul tile (a loop over the row's D4 vec4 chunks: R query
// vec4s and C key vec4s feed R·C dot products, so every loaded key vec4 serves R rows), then per row the
// online-softmax update (running max m, sum l, rescale factor) in named scalars, then the P·V step: a loop
// over the D4 chunks loading C value vec4s, each feeding R rows' accumulators a_r[d4].
// Why this shape (llvmpipe, 8 invocations per SIMD chunk): every load instruction inside a loop is an
// 8-lane gather there (even when the address is uniform), so the kernel keeps loads few and wide (vec4)
// and reuses each loaded vector R (or C) times from registers; the per-row score state is named scalars
// (s0_0, p0_0, m0, ...), not arrays, so nothing small is indexed dynamically. The launcher
// (src/kernels/attention.ts, blockedForwardBody) writes out the statements over r < R and c < C; the
// loops over d4 keep a runtime bound (P.d4): unrolling them made lavapipe's compile time explode.
// All lanes of a workgroup share (b, h) and the key block. No workgroup memory, no barriers. The N×N
// scores never reach global memory.
// q, k, v are read as rows of D4 vec4s (the launcher zero-pads rows when D % 4 != 0); out is written
// with the unpadded row length D.
// S = scale·q·kᵀ + mask; out = headScale[h] · softmax(S)·V; lse = logsumexp(S).
// A row whose scores are all -inf gets out = 0 and lse = -inf (the backward then gives it zero gradients).
struct Params { n: u32, bh: u32, h: u32, mask_b: u32, mask_h: u32, scale: f32, neg_inf: f32, d4: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> mask: array<f32>;    // bound to q when HAS_MASK is false
@group(0) @binding(5) var<storage, read> hscale: array<f32>;  // bound to q when HAS_HS is false
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read_write> lse: array<f32>;

const D: u32 = {{D}}u;    // head dimension (row length of out)
const D4: u32 = {{D4}}u;  // vec4 chunks per (padded) row of q, k, v
const R: u32 = {{R}}u;    // query rows per invocation
const C: u32 = {{C}}u;    // keys per block
const WG: u32 = {{WG}}u;
const HAS_MASK: bool = {{HAS_MASK}};
const HAS_HS: bool = {{HAS_HS}};

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let bh = wid.y + wid.z * nwg.y;
  if (bh >= P.bh) { return; }  // uniform per workgroup; rows past n compute on row n - 1 and store nothing
  let n = P.n;
  let dl = P.d4;  // = D4, as a runtime loop bound
  let row0 = (wid.x * WG + lid.x) * R;
  let NEG_INF = P.neg_inf;  // a runtime -inf (a const-expression inf is a WGSL error)
  let base = bh * n * D4;
  let hh = bh % P.h;
  let mb = (bh / P.h) * P.mask_b + hh * P.mask_h;
  var hs = 1.0;
  if (HAS_HS) { hs = hscale[hh]; }
  if (HAS_MASK) { _ = mask[0]; }
  // Per row r: qo_r (q row offset, clamped to n - 1), mr_r (mask row), m_r, l_r, accumulators a_r.
{{SETUP}}
  for (var j0 = 0u; j0 < n; j0 += C) {
    // Per key c: j_c, ko_c (k/v row offset, clamped); scores s_r_c = q_r · k_c.
{{KEYS}}
    for (var d4 = 0u; d4 < dl; d4++) {
{{DOT}}
    }
    // Scale, mask, keys past n → -inf; block max; online-softmax update; p_r_c.
{{UPDATE}}
    // a_r = a_r·corr_r + Σ_c p_r_c v_c
    for (var d4 = 0u; d4 < dl; d4++) {
{{PV}}
    }
  }
{{STORE}}
}
