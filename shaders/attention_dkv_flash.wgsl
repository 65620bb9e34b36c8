// Attention backward, dK and dV, "flash" variant (for GPUs): the forward's tiling (attention_fwd_flash.wgsl)
// applied to FlashAttention-2's dK/dV pass, with keys and queries swapping roles. A 16×16 workgroup owns BKV = 16·TR
// key rows of one (batch, head) and stages their k (scaled) and v once; it walks the queries in tiles of
// BQ = 16·TC, staging q, dOs and the rows' (lse, Di). Invocation (tx, ty) computes a TR×TC block of S and dP
// (key rows ty + 16·i, queries tx + 16·c), then P = exp(S − lse) and dS = P ∘ (dP − Di) go through workgroup memory
// (groups of 4 queries as array<f32, 4>, written by 4 invocations: see attention_fwd_flash.wgsl; rows padded by one
// group) and it adds Pᵀ·dOs and dSᵀ·q to its TR×TD4 blocks of vec4s
// of dV and dK (head columns 4·tx + 64·j … +3, 4 queries a step, every operand a vec4 load, as the forward's P·V;
// columns 16 apart were one scalar load per 2 FMAs). No atomics: each
// workgroup sums over every query for its keys. dV_j = Σ_i P_ij dOs_i; dK_j = scale·Σ_i dS_ij q_i. For 'flash-ds'
// it also stores dS transposed (key-major; DS_DECL/DS_STORE, see flashDsDefs), for dQ = scale·dS·K as a matmul.
// Tiles are staged as vec4s along D (D4 = ⌈D/4⌉ per row, tail zero-padded, rows padded by one vec4 against bank
// conflicts), so the score loop does one 16-byte load per 4 products; staging loops unroll.
//#include "attention_bwd_inputs"
@group(0) @binding(7) var<storage, read_write> dk: array<f32>;
@group(0) @binding(8) var<storage, read_write> dv: array<f32>;
{{DS_DECL}}

const D: u32 = {{D}}u;
const TR: u32 = {{TR}}u;
const TC: u32 = {{TC}}u;
const TD4: u32 = {{TD4}}u;  // vec4s of head columns per invocation (⌈D/64⌉)
const BKV: u32 = 16u * TR;
const BQ: u32 = 16u * TC;
const D4: u32 = (D + 3u) / 4u;
const DS4: u32 = D4 + 1u;
const SS4: u32 = BQ / 4u + 1u;  // row stride of the P and dS tiles, in groups of 4
const HAS_MASK: bool = {{HAS_MASK}};

var<workgroup> ks: array<vec4<f32>, BKV * DS4>;
var<workgroup> vs: array<vec4<f32>, BKV * DS4>;
var<workgroup> qt: array<vec4<f32>, BQ * DS4>;
var<workgroup> gt: array<vec4<f32>, BQ * DS4>;
var<workgroup> pt: array<array<f32, 4>, BKV * SS4>;
var<workgroup> dst: array<array<f32, 4>, BKV * SS4>;
var<workgroup> st: array<f32, BQ * 2u>;

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
  let k0 = wid.x * BKV;
  let base = bh * n * D;
  let mbase = (bh / P.h) * P.mask_b + (bh % P.h) * P.mask_h;
  for (var t = 0u; t < (BKV * D4 + 255u) / 256u; t++) {
    let idx = li + 256u * t;
    if (idx < BKV * D4) {
      let r = min(k0 + idx / D4, n - 1u);
      let o = (idx / D4) * DS4 + idx % D4;
      ks[o] = row4(base, 2u, r, 4u * (idx % D4)) * P.scale;
      vs[o] = row4(base, 3u, r, 4u * (idx % D4));
    }
  }
  var ak: array<array<vec4<f32>, TD4>, TR>;
  var av: array<array<vec4<f32>, TD4>, TR>;
  for (var i = 0u; i < TR; i++) {
    for (var j = 0u; j < TD4; j++) { ak[i][j] = vec4<f32>(0.0); av[i][j] = vec4<f32>(0.0); }
  }
  for (var i0 = 0u; i0 < n; i0 += BQ) {
    workgroupBarrier();  // the previous tile's readers of qt, gt, pt, dst and st are done
    for (var t = 0u; t < (BQ * D4 + 255u) / 256u; t++) {
      let idx = li + 256u * t;
      if (idx < BQ * D4) {
        let r = min(i0 + idx / D4, n - 1u);
        let o = (idx / D4) * DS4 + idx % D4;
        qt[o] = row4(base, 0u, r, 4u * (idx % D4));
        gt[o] = row4(base, 1u, r, 4u * (idx % D4));
      }
    }
    if (li < BQ * 2u) { st[li] = stats[2u * (bh * n + min(i0 + li / 2u, n - 1u)) + li % 2u]; }  // BQ·2 ≤ 128
    workgroupBarrier();
    var s: array<array<f32, TC>, TR>;
    var dp: array<array<f32, TC>, TR>;
    for (var i = 0u; i < TR; i++) {
      for (var c = 0u; c < TC; c++) { s[i][c] = 0.0; dp[i][c] = 0.0; }
    }
    for (var d4 = 0u; d4 < DL; d4++) {
      var kv: array<vec4<f32>, TR>;
      var vv: array<vec4<f32>, TR>;
      for (var i = 0u; i < TR; i++) {
        kv[i] = ks[(ty + 16u * i) * DS4 + d4];
        vv[i] = vs[(ty + 16u * i) * DS4 + d4];
      }
      for (var c = 0u; c < TC; c++) {
        let qd = qt[(tx + 16u * c) * DS4 + d4];
        let gd = gt[(tx + 16u * c) * DS4 + d4];
        for (var i = 0u; i < TR; i++) {
          s[i][c] += dot(kv[i], qd);
          dp[i][c] += dot(vv[i], gd);
        }
      }
    }
    for (var i = 0u; i < TR; i++) {
      let j = min(k0 + ty + 16u * i, n - 1u);
      for (var c = 0u; c < TC; c++) {
        let qi = i0 + tx + 16u * c;
        let cc = tx + 16u * c;
        var sv = s[i][c];
        if (HAS_MASK) { sv += mask[mbase + min(qi, n - 1u) * n + j]; }
        let p = select(0.0, exp(sv - st[2u * cc]), qi < n);  // lse is +3e38 for a fully masked row: p = 0
        pt[(ty + 16u * i) * SS4 + cc / 4u][cc % 4u] = p;
        let dsv = p * (dp[i][c] - st[2u * cc + 1u]);
        dst[(ty + 16u * i) * SS4 + cc / 4u][cc % 4u] = dsv;
        {{DS_STORE}}
      }
    }
    workgroupBarrier();
    for (var c4 = 0u; c4 < BQ / 4u; c4++) {
      var pv: array<array<f32, 4>, TR>;
      var sv: array<array<f32, 4>, TR>;
      for (var i = 0u; i < TR; i++) {
        pv[i] = pt[(ty + 16u * i) * SS4 + c4];
        sv[i] = dst[(ty + 16u * i) * SS4 + c4];
      }
      for (var u = 0u; u < 4u; u++) {
        for (var j = 0u; j < TD4; j++) {
          let col = (4u * c4 + u) * DS4 + min(tx + 16u * j, D4 - 1u);
          let gg = gt[col];
          let qq = qt[col];
          for (var i = 0u; i < TR; i++) {
            av[i][j] = fma(vec4<f32>(pv[i][u]), gg, av[i][j]);
            ak[i][j] = fma(vec4<f32>(sv[i][u]), qq, ak[i][j]);
          }
        }
      }
    }
  }
  for (var i = 0u; i < TR; i++) {
    let row = k0 + ty + 16u * i;
    if (row < n) {
      for (var j = 0u; j < TD4; j++) {
        let d0 = 4u * (tx + 16u * j);
        for (var u = 0u; u < 4u; u++) {
          if (d0 + u < D) {
            dk[base + row * D + d0 + u] = ak[i][j][u] * P.scale;
            dv[base + row * D + d0 + u] = av[i][j][u];
          }
        }
      }
    }
  }
}
