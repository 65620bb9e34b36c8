// Fused attention forward, "tiled" variant (for GPUs): a workgroup of WG invocations owns WG query rows
// (one each) and walks the keys in blocks of BK, staging each K/V block in workgroup memory (loaded
// cooperatively, coalesced), then every invocation runs the online softmax over the block: running max
// m and sum l, accumulator rescaled once per block. The N×N scores never reach global memory.
// S = scale·q·kᵀ + mask; out = headScale[h] · softmax(S)·V; lse = logsumexp(S).
// A row whose scores are all -inf gets out = 0 and lse = -inf.
//#include "attention_fwd_io"

var<workgroup> kt: array<f32, BK * D>;
var<workgroup> vt: array<f32, BK * D>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let DL = {{DLOOP}};  // loop bound over D: the constant D (unrolled, arrays in registers) or P.d (software adapters: no unroll)
  let bh = wid.y + wid.z * nwg.y;
  let n = P.n;
  if (bh >= P.bh) { return; }  // uniform per workgroup
  let row = wid.x * WG + lid.x;
  let r = min(row, n - 1u);    // rows past n compute on row n-1 (keeping barriers uniform) and store nothing
  let NEG_INF = P.neg_inf;
  let base = bh * n * D;
  let hh = bh % P.h;
  let mrow = (bh / P.h) * P.mask_b + hh * P.mask_h + r * n;
  var qr: array<f32, D>;
  for (var d = 0u; d < DL; d++) { qr[d] = q[base + r * D + d] * P.scale; }
  var acc: array<f32, D>;
  var s: array<f32, BK>;
  var m = NEG_INF;
  var l = 0.0;
  for (var j0 = 0u; j0 < n; j0 += BK) {
    workgroupBarrier();
    for (var idx = lid.x; idx < BK * D; idx += WG) {
      let g = base + min(j0 + idx / D, n - 1u) * D + idx % D;
      kt[idx] = k[g];
      vt[idx] = v[g];
    }
    workgroupBarrier();
    var bm = NEG_INF;
    for (var jj = 0u; jj < BK; jj++) {
      var dot = 0.0;
      for (var d = 0u; d < DL; d++) { dot += qr[d] * kt[jj * D + d]; }
      if (HAS_MASK) { dot += mask[mrow + min(j0 + jj, n - 1u)]; }
      let sv = select(NEG_INF, dot, j0 + jj < n);
      s[jj] = sv;
      bm = max(bm, sv);
    }
    let mn = max(m, bm);
    let ms = select(mn, 0.0, mn == NEG_INF);
    let corr = exp(m - ms);
    var psum = 0.0;
    for (var jj = 0u; jj < BK; jj++) {
      let p = exp(s[jj] - ms);
      s[jj] = p;
      psum += p;
    }
    l = l * corr + psum;
    for (var d = 0u; d < DL; d++) {
      var a = acc[d] * corr;
      for (var jj = 0u; jj < BK; jj++) { a += s[jj] * vt[jj * D + d]; }
      acc[d] = a;
    }
    m = mn;
  }
  if (row >= n) { return; }
  var hs = 1.0;
  if (HAS_HS) { hs = hscale[hh]; }
  let inv = select(hs / l, 0.0, l == 0.0);
  let o = base + row * D;
  for (var d = 0u; d < DL; d++) { out[o + d] = acc[d] * inv; }
  lse[bh * n + row] = select(m + log(l), NEG_INF, l == 0.0);
}
