// Fused attention forward, "rows" variant: one invocation owns one query row and streams K/V from
// global memory in blocks of BK keys with an online softmax (running max m, running sum l, the
// accumulator rescaled once per block). No workgroup memory and no barriers (lavapipe runs barriers
// slowly; all lanes of a workgroup share (b, h), so K/V loads are the same address across lanes).
// S = scale·q·kᵀ + mask; out = headScale[h] · softmax(S)·V; lse = logsumexp(S).
// A row whose scores are all -inf gets out = 0 and lse = -inf (the backward then gives it zero gradients).
//#include "attention_fwd_io"

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let DL = {{DLOOP}};  // loop bound over D: the constant D (unrolled, arrays in registers) or P.d (software adapters: no unroll)
  let bh = wid.y + wid.z * nwg.y;
  let n = P.n;
  let row = wid.x * WG + lid.x;
  if (bh >= P.bh || row >= n) { return; }
  let NEG_INF = P.neg_inf;  // a runtime -inf (a const-expression inf is a WGSL error)
  let base = bh * n * D;
  let hh = bh % P.h;
  let mrow = (bh / P.h) * P.mask_b + hh * P.mask_h + row * n;
  var qr: array<f32, D>;
  for (var d = 0u; d < DL; d++) { qr[d] = q[base + row * D + d] * P.scale; }
  var acc: array<f32, D>;
  var s: array<f32, BK>;
  var m = NEG_INF;
  var l = 0.0;
  for (var j0 = 0u; j0 < n; j0 += BK) {
    var bm = NEG_INF;
    for (var jj = 0u; jj < BK; jj++) {
      let j = min(j0 + jj, n - 1u);
      let kb = base + j * D;
      var dot = 0.0;
      for (var d = 0u; d < DL; d++) { dot += qr[d] * k[kb + d]; }
      if (HAS_MASK) { dot += mask[mrow + j]; }
      let sv = select(NEG_INF, dot, j0 + jj < n);
      s[jj] = sv;
      bm = max(bm, sv);
    }
    let mn = max(m, bm);
    let ms = select(mn, 0.0, mn == NEG_INF);  // all scores so far -inf: keep exp() finite (gives 0)
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
      for (var jj = 0u; jj < BK; jj++) { a += s[jj] * v[base + min(j0 + jj, n - 1u) * D + d]; }
      acc[d] = a;
    }
    m = mn;
  }
  var hs = 1.0;
  if (HAS_HS) { hs = hscale[hh]; }
  let inv = select(hs / l, 0.0, l == 0.0);
  let o = base + row * D;
  for (var d = 0u; d < DL; d++) { out[o + d] = acc[d] * inv; }
  lse[bh * n + row] = select(m + log(l), NEG_INF, l == 0.0);
}
