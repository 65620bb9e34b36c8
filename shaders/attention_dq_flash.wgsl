// Attention backward, dQ, "flash" variant (for GPUs): the forward's tiling (attention_fwd_flash.wgsl) applied to
// FlashAttention-2's dQ pass. A 16×16 workgroup owns BQ = 16·TR query rows of one (batch, head) and stages their
// q (scaled) and dOs once; it walks the keys in tiles of BKV = 16·TC, staging K and V. Invocation (tx, ty) computes
// a TR×TC block of S = scale·q·kᵀ + mask and dP = dOs·vᵀ (query rows ty + 16·i, keys tx + 16·c), turns it into
// dS = P ∘ (dP − Di) with P = exp(S − lse), and, after dS goes through workgroup memory (groups of 4 keys as
// array<f32, 4>, written by 4 invocations: see attention_fwd_flash.wgsl; rows padded by one group), adds dS·K to its TR×TD4 block of vec4s of dQ (head columns 4·tx + 64·j … +3, 4 keys a
// step: vec4 loads of dS and K, as the forward's P·V). dQ = scale·Σ_j dS_ij k_j. Rows past n compute on row n−1 and
// store nothing.
// Tiles are staged as vec4s along D (D4 = ⌈D/4⌉ per row, tail zero-padded, rows padded by one vec4 against bank
// conflicts), so the score loop does one 16-byte load per 4 products; staging loops unroll.
//#include "attention_bwd_inputs"
@group(0) @binding(7) var<storage, read_write> dq: array<f32>;

const D: u32 = {{D}}u;
const TR: u32 = {{TR}}u;
const TC: u32 = {{TC}}u;
const TD4: u32 = {{TD4}}u;  // vec4s of head columns per invocation (⌈D/64⌉)
const BQ: u32 = 16u * TR;
const BKV: u32 = 16u * TC;
const D4: u32 = (D + 3u) / 4u;
const DS4: u32 = D4 + 1u;
const SS4: u32 = BKV / 4u + 1u;  // row stride of the dS tile, in groups of 4
const HAS_MASK: bool = {{HAS_MASK}};

var<workgroup> qs: array<vec4<f32>, BQ * DS4>;
var<workgroup> gs: array<vec4<f32>, BQ * DS4>;
var<workgroup> kt: array<vec4<f32>, BKV * DS4>;
var<workgroup> vt: array<vec4<f32>, BKV * DS4>;
var<workgroup> dst: array<array<f32, 4>, BQ * SS4>;

//#include "attention_bwd_row4"

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  let DL = {{DLOOP}};  // loop bound over D4: the constant D4, or P.d (= D4) on software adapters (no full unroll)
  let bh = wid.y + wid.z * nwg.y;
  let n = P.n;
  if (bh >= P.bh) { return; }  // uniform per workgroup
  let tx = lid.x;
  let ty = lid.y;
  let q0 = wid.x * BQ;
  let base = bh * n * D;
  let mbase = (bh / P.h) * P.mask_b + (bh % P.h) * P.mask_h;
  for (var t = 0u; t < (BQ * D4 + 255u) / 256u; t++) {
    let idx = li + 256u * t;
    if (idx < BQ * D4) {
      let r = min(q0 + idx / D4, n - 1u);
      let o = (idx / D4) * DS4 + idx % D4;
      qs[o] = row4(base, 0u, r, 4u * (idx % D4)) * P.scale;
      gs[o] = row4(base, 1u, r, 4u * (idx % D4));
    }
  }
  var lr: array<f32, TR>;
  var di: array<f32, TR>;
  var acc: array<array<vec4<f32>, TD4>, TR>;
  for (var i = 0u; i < TR; i++) {
    let r = bh * n + min(q0 + ty + 16u * i, n - 1u);
    lr[i] = stats[2u * r];
    di[i] = stats[2u * r + 1u];
    for (var j = 0u; j < TD4; j++) { acc[i][j] = vec4<f32>(0.0); }
  }
  for (var j0 = 0u; j0 < n; j0 += BKV) {
    workgroupBarrier();  // the previous tile's readers of kt and dst are done
    for (var t = 0u; t < (BKV * D4 + 255u) / 256u; t++) {
      let idx = li + 256u * t;
      if (idx < BKV * D4) {
        let r = min(j0 + idx / D4, n - 1u);
        let o = (idx / D4) * DS4 + idx % D4;
        kt[o] = row4(base, 2u, r, 4u * (idx % D4));
        vt[o] = row4(base, 3u, r, 4u * (idx % D4));
      }
    }
    workgroupBarrier();
    var s: array<array<f32, TC>, TR>;
    var dp: array<array<f32, TC>, TR>;
    for (var i = 0u; i < TR; i++) {
      for (var c = 0u; c < TC; c++) { s[i][c] = 0.0; dp[i][c] = 0.0; }
    }
    for (var d4 = 0u; d4 < DL; d4++) {
      var qv: array<vec4<f32>, TR>;
      var gv: array<vec4<f32>, TR>;
      for (var i = 0u; i < TR; i++) {
        qv[i] = qs[(ty + 16u * i) * DS4 + d4];
        gv[i] = gs[(ty + 16u * i) * DS4 + d4];
      }
      for (var c = 0u; c < TC; c++) {
        let kd = kt[(tx + 16u * c) * DS4 + d4];
        let vd = vt[(tx + 16u * c) * DS4 + d4];
        for (var i = 0u; i < TR; i++) {
          s[i][c] += dot(qv[i], kd);
          dp[i][c] += dot(gv[i], vd);
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
        let kk = tx + 16u * c;
        dst[(ty + 16u * i) * SS4 + kk / 4u][kk % 4u] = p * (dp[i][c] - di[i]);
      }
    }
    workgroupBarrier();
    for (var c4 = 0u; c4 < BKV / 4u; c4++) {
      var dv: array<array<f32, 4>, TR>;
      for (var i = 0u; i < TR; i++) { dv[i] = dst[(ty + 16u * i) * SS4 + c4]; }
      for (var u = 0u; u < 4u; u++) {
        for (var j = 0u; j < TD4; j++) {
          let kv = kt[(4u * c4 + u) * DS4 + min(tx + 16u * j, D4 - 1u)];
          for (var i = 0u; i < TR; i++) { acc[i][j] = fma(vec4<f32>(dv[i][u]), kv, acc[i][j]); }
        }
      }
    }
  }
  for (var i = 0u; i < TR; i++) {
    let row = q0 + ty + 16u * i;
    if (row < n) {
      for (var j = 0u; j < TD4; j++) {
        let d0 = 4u * (tx + 16u * j);
        for (var u = 0u; u < 4u; u++) {
          if (d0 + u < D) { dq[base + row * D + d0 + u] = acc[i][j][u] * P.scale; }
        }
      }
    }
  }
}
