// Attention backward, dQ, "flash" variant (for GPUs): the forward's tiling (attention_fwd_flash.wgsl) applied to
// FlashAttention-2's dQ pass. A 16×16 workgroup owns BQ = 16·TR query rows of one (batch, head) and stages their
// q (scaled) and dOs once; it walks the keys in tiles of BKV = 16·TC, staging K and V. Invocation (tx, ty) computes
// a TR×TC block of S = scale·q·kᵀ + mask and dP = dOs·vᵀ (query rows ty + 16·i, keys tx + 16·c), turns it into
// dS = P ∘ (dP − Di) with P = exp(S − lse), and, after dS goes through workgroup memory, adds dS·K to its TR×TD block
// of dQ (head columns tx + 16·j). dQ = scale·Σ_j dS_ij k_j. Rows past n compute on row n−1 and store nothing.
// Staged rows are padded by one float (stride D+1, BKV+1) against bank conflicts; staging loops unroll.
//#include "attention_bwd_inputs"
@group(0) @binding(7) var<storage, read_write> dq: array<f32>;

const D: u32 = {{D}}u;
const TR: u32 = {{TR}}u;
const TC: u32 = {{TC}}u;
const TD: u32 = {{TD}}u;
const BQ: u32 = 16u * TR;
const BKV: u32 = 16u * TC;
const DS: u32 = D + 1u;
const SS: u32 = BKV + 1u;
const HAS_MASK: bool = {{HAS_MASK}};

var<workgroup> qs: array<f32, BQ * DS>;
var<workgroup> gs: array<f32, BQ * DS>;
var<workgroup> kt: array<f32, BKV * DS>;
var<workgroup> vt: array<f32, BKV * DS>;
var<workgroup> dst: array<f32, BQ * SS>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  let DL = {{DLOOP}};  // loop bound over D: the constant D, or P.d on software adapters (no full unroll)
  let bh = wid.y + wid.z * nwg.y;
  let n = P.n;
  if (bh >= P.bh) { return; }  // uniform per workgroup
  let tx = lid.x;
  let ty = lid.y;
  let q0 = wid.x * BQ;
  let base = bh * n * D;
  let mbase = (bh / P.h) * P.mask_b + (bh % P.h) * P.mask_h;
  for (var t = 0u; t < (BQ * D + 255u) / 256u; t++) {
    let idx = li + 256u * t;
    if (idx < BQ * D) {
      let g = base + min(q0 + idx / D, n - 1u) * D + idx % D;
      qs[(idx / D) * DS + idx % D] = q[g] * P.scale;
      gs[(idx / D) * DS + idx % D] = dos[g];
    }
  }
  var lr: array<f32, TR>;
  var di: array<f32, TR>;
  var acc: array<array<f32, TD>, TR>;
  for (var i = 0u; i < TR; i++) {
    let r = bh * n + min(q0 + ty + 16u * i, n - 1u);
    lr[i] = stats[2u * r];
    di[i] = stats[2u * r + 1u];
    for (var j = 0u; j < TD; j++) { acc[i][j] = 0.0; }
  }
  for (var j0 = 0u; j0 < n; j0 += BKV) {
    workgroupBarrier();  // the previous tile's readers of kt and dst are done
    for (var t = 0u; t < (BKV * D + 255u) / 256u; t++) {
      let idx = li + 256u * t;
      if (idx < BKV * D) {
        let c = idx / D;
        let g = base + min(j0 + c, n - 1u) * D + idx % D;
        kt[c * DS + idx % D] = k[g];
        vt[c * DS + idx % D] = v[g];
      }
    }
    workgroupBarrier();
    var s: array<array<f32, TC>, TR>;
    var dp: array<array<f32, TC>, TR>;
    for (var i = 0u; i < TR; i++) {
      for (var c = 0u; c < TC; c++) { s[i][c] = 0.0; dp[i][c] = 0.0; }
    }
    for (var d = 0u; d < DL; d++) {
      var qv: array<f32, TR>;
      var gv: array<f32, TR>;
      for (var i = 0u; i < TR; i++) {
        qv[i] = qs[(ty + 16u * i) * DS + d];
        gv[i] = gs[(ty + 16u * i) * DS + d];
      }
      for (var c = 0u; c < TC; c++) {
        let kd = kt[(tx + 16u * c) * DS + d];
        let vd = vt[(tx + 16u * c) * DS + d];
        for (var i = 0u; i < TR; i++) {
          s[i][c] = fma(qv[i], kd, s[i][c]);
          dp[i][c] = fma(gv[i], vd, dp[i][c]);
        }
      }
    }
    for (var i = 0u; i < TR; i++) {
      let r = min(q0 + ty + 16u * i, n - 1u);
      for (var c = 0u; c < TC; c++) {
        let j = j0 + tx + 16u * c;
        var sv = s[i][c];
        if (HAS_MASK) { sv += mask[mbase + r * n + min(j, n - 1u)]; }
        let p = select(0.0, exp(sv - lr[i]), j < n);  // lr is +3e38 for a fully masked row: p = 0
        dst[(ty + 16u * i) * SS + tx + 16u * c] = p * (dp[i][c] - di[i]);
      }
    }
    workgroupBarrier();
    for (var c = 0u; c < BKV; c++) {
      var kk: array<f32, TD>;
      for (var j = 0u; j < TD; j++) { kk[j] = kt[c * DS + min(tx + 16u * j, D - 1u)]; }
      for (var i = 0u; i < TR; i++) {
        let ds = dst[(ty + 16u * i) * SS + c];
        for (var j = 0u; j < TD; j++) { acc[i][j] = fma(ds, kk[j], acc[i][j]); }
      }
    }
  }
  for (var i = 0u; i < TR; i++) {
    let row = q0 + ty + 16u * i;
    if (row < n) {
      for (var j = 0u; j < TD; j++) {
        let d = tx + 16u * j;
        if (d < D) { dq[base + row * D + d] = acc[i][j] * P.scale; }
      }
    }
  }
}
