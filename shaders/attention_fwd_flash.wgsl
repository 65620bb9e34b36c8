// Fused attention forward, "flash" variant (for GPUs): FlashAttention-2's tile-of-queries × tile-of-keys
// with register blocking. A workgroup of 16×16 invocations owns BQ = 16·TR query rows of one (batch, head)
// and walks the keys in tiles of BKV = 16·TC. Invocation (tx, ty) owns query rows ty + 16·i (i < TR), and
//   - for the scores, keys tx + 16·c (c < TC): a TR×TC block of S = scale·Q·Kᵀ + mask, every Q and K value it
//     loads from workgroup memory used TC or TR times (the 'tiled' variant used each K value once per load);
//   - for the output, head columns 4·tx + 64·j … +3 (j < TD4 = ⌈D/64⌉): a TR×TD4 block of vec4s of O += P·V, read
//     as vec4s: per 4 keys, TR vec4s of P and 4·TD4 vec4s of V for 16·TR·TD4 FMAs (one scalar load of P and of V
//     per 2 FMAs when the columns were tx + 16·j: shared-memory bound on a GPU).
// Row statistics (running max m, sum l) are reduced across the 16 invocations of a row through workgroup
// memory (red) for the max; every invocation of a row keeps the same m, and its own share of the row sum l (the
// same rescaling applies to every share), summed once at the end. The probabilities of a tile go through
// workgroup memory (ps) from the invocation that computed them to those that multiply them with V.
// Q's tile is staged once per workgroup (qs, already scaled) when it fits (QS), else read from global memory.
// Q, K and V tiles are staged as vec4s along D (D4 = ⌈D/4⌉ per row, the tail zero-padded), so the score loop does one
// 16-byte load per 4 products; Q's and K's rows are padded by one vec4 (stride D4+1) so the 16 keys one warp reads at
// the same column fall in different banks (V is read one row at a time: no padding). P's tile holds groups of 4 keys
// as array<f32, 4>, not vec4: 4 invocations write the 4 values of a group, and WGSL lets a write to one component of
// a vector access the whole vector (Metal and D3D compilers may read-modify-write it: gpuweb issue 2112), while array
// elements are memory locations of their own; the P·V loop reads a group at once. Its rows are padded by one group,
// which moves the rows ty and ty+1 four banks apart where the probabilities are written. The
// staging loops have a constant trip count (they unroll). Padding: query rows past n compute on row n−1 and store
// nothing; keys past n score −∞.
// Barriers are in uniform control flow (every loop bound is uniform per workgroup).
// S = scale·q·kᵀ + mask; out = headScale[h] · softmax(S)·V; lse = logsumexp(S). A row whose scores are all −∞
// gets out = 0 and lse = −∞.
//#include "attention_fwd_io"

const TR: u32 = {{TR}}u;   // query rows per invocation
const TC: u32 = {{TC}}u;   // keys per invocation in the score block
const TD4: u32 = {{TD4}}u; // vec4s of head columns per invocation in the output block (⌈D/64⌉)
const BQ: u32 = 16u * TR;  // query rows per workgroup
const BKV: u32 = 16u * TC; // keys per tile
const D4: u32 = (D + 3u) / 4u;
const DS4: u32 = D4 + 1u;  // row stride of the staged q, k tiles, in vec4s (bank-conflict padding)
const PS4: u32 = BKV / 4u + 1u;  // row stride of the probability tile, in groups of 4
const QS: bool = {{QS}};   // Q tile staged in workgroup memory

var<workgroup> qs: array<vec4<f32>, {{QS_LEN}}>;
var<workgroup> kt: array<vec4<f32>, BKV * DS4>;
var<workgroup> vt: array<vec4<f32>, BKV * D4>;

// Row r's values d0..d0+3 of a [n, D] array (q, k or v: which = 0, 1, 2) as a vec4, zero past D.
fn row4(a: u32, which: u32, r: u32, d0: u32) -> vec4<f32> {
  var x = vec4<f32>(0.0);
  for (var u = 0u; u < 4u; u++) {
    if (d0 + u < D) {
      let i = a + r * D + d0 + u;
      if (which == 0u) { x[u] = q[i]; } else if (which == 1u) { x[u] = k[i]; } else { x[u] = v[i]; }
    }
  }
  return x;
}
var<workgroup> ps: array<array<f32, 4>, BQ * PS4>;
var<workgroup> red: array<f32, BQ * 16u>;

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
  let NEG_INF = P.neg_inf;
  let base = bh * n * D;
  let hh = bh % P.h;
  let mbase = (bh / P.h) * P.mask_b + hh * P.mask_h;
  if (QS) {
    for (var t = 0u; t < (BQ * D4 + 255u) / 256u; t++) {
      let idx = li + 256u * t;
      if (idx < BQ * D4) { qs[(idx / D4) * DS4 + idx % D4] = row4(base, 0u, min(q0 + idx / D4, n - 1u), 4u * (idx % D4)) * P.scale; }
    }
  }
  var m: array<f32, TR>;
  var l: array<f32, TR>;
  var acc: array<array<vec4<f32>, TD4>, TR>;
  for (var i = 0u; i < TR; i++) {
    m[i] = NEG_INF;
    l[i] = 0.0;
    for (var j = 0u; j < TD4; j++) { acc[i][j] = vec4<f32>(0.0); }
  }
  for (var j0 = 0u; j0 < n; j0 += BKV) {
    workgroupBarrier();  // the previous tile's readers of kt, vt, ps and red are done
    for (var t = 0u; t < (BKV * D4 + 255u) / 256u; t++) {
      let idx = li + 256u * t;
      if (idx < BKV * D4) { kt[(idx / D4) * DS4 + idx % D4] = row4(base, 1u, min(j0 + idx / D4, n - 1u), 4u * (idx % D4)); }
    }
    for (var t = 0u; t < (BKV * D4 + 255u) / 256u; t++) {
      let idx = li + 256u * t;
      if (idx < BKV * D4) { vt[idx] = row4(base, 2u, min(j0 + idx / D4, n - 1u), 4u * (idx % D4)); }
    }
    workgroupBarrier();
    // Scores: the TR×TC block.
    var s: array<array<f32, TC>, TR>;
    for (var i = 0u; i < TR; i++) {
      for (var c = 0u; c < TC; c++) { s[i][c] = 0.0; }
    }
    for (var d4 = 0u; d4 < DL; d4++) {
      var qv: array<vec4<f32>, TR>;
      for (var i = 0u; i < TR; i++) {
        let r = ty + 16u * i;
        if (QS) { qv[i] = qs[r * DS4 + d4]; } else { qv[i] = row4(base, 0u, min(q0 + r, n - 1u), 4u * d4) * P.scale; }
      }
      for (var c = 0u; c < TC; c++) {
        let kd = kt[(tx + 16u * c) * DS4 + d4];
        for (var i = 0u; i < TR; i++) { s[i][c] += dot(qv[i], kd); }
      }
    }
    for (var i = 0u; i < TR; i++) {
      let r = min(q0 + ty + 16u * i, n - 1u);
      var bm = NEG_INF;
      for (var c = 0u; c < TC; c++) {
        let j = j0 + tx + 16u * c;
        var sv = s[i][c];
        if (HAS_MASK) { sv += mask[mbase + r * n + min(j, n - 1u)]; }
        sv = select(NEG_INF, sv, j < n);
        s[i][c] = sv;
        bm = max(bm, sv);
      }
      red[(ty + 16u * i) * 16u + tx] = bm;
    }
    workgroupBarrier();
    // Row max over the tile, new running max, probabilities; this invocation's share of l and its outputs rescaled.
    for (var i = 0u; i < TR; i++) {
      let rr = (ty + 16u * i) * 16u;
      var tm = NEG_INF;
      for (var t = 0u; t < 16u; t++) { tm = max(tm, red[rr + t]); }
      let mn = max(m[i], tm);
      let ms = select(mn, 0.0, mn == NEG_INF);  // all −∞ so far: exp(−∞ − 0) = 0, no NaN
      let corr = exp(m[i] - ms);
      m[i] = mn;
      var sum = 0.0;
      for (var c = 0u; c < TC; c++) {
        let p = exp(s[i][c] - ms);
        let kk = tx + 16u * c;
        ps[(ty + 16u * i) * PS4 + kk / 4u][kk % 4u] = p;
        sum += p;
      }
      l[i] = l[i] * corr + sum;
      for (var j = 0u; j < TD4; j++) { acc[i][j] *= corr; }
    }
    workgroupBarrier();  // ps written
    // O += P·V on the TR×TD4 block of vec4s, 4 keys at a time. (Columns past D4 — D < 64 — read the last vec4 and
    // are not stored.)
    for (var c4 = 0u; c4 < BKV / 4u; c4++) {
      var pv: array<array<f32, 4>, TR>;
      for (var i = 0u; i < TR; i++) { pv[i] = ps[(ty + 16u * i) * PS4 + c4]; }
      for (var u = 0u; u < 4u; u++) {
        for (var j = 0u; j < TD4; j++) {
          let vv = vt[(4u * c4 + u) * D4 + min(tx + 16u * j, D4 - 1u)];
          for (var i = 0u; i < TR; i++) { acc[i][j] = fma(vec4<f32>(pv[i][u]), vv, acc[i][j]); }
        }
      }
    }
  }
  // The row sums: the 16 shares of each row.
  workgroupBarrier();  // the last tile's readers of red are done
  for (var i = 0u; i < TR; i++) { red[(ty + 16u * i) * 16u + tx] = l[i]; }
  workgroupBarrier();
  for (var i = 0u; i < TR; i++) {
    let rr = (ty + 16u * i) * 16u;
    var ts = 0.0;
    for (var t = 0u; t < 16u; t++) { ts += red[rr + t]; }
    l[i] = ts;
  }
  var hs = 1.0;
  if (HAS_HS) { hs = hscale[hh]; }
  for (var i = 0u; i < TR; i++) {
    let row = q0 + ty + 16u * i;
    if (row < n) {
      let inv = select(hs / l[i], 0.0, l[i] == 0.0);
      for (var j = 0u; j < TD4; j++) {
        let d0 = 4u * (tx + 16u * j);
        for (var u = 0u; u < 4u; u++) {
          if (d0 + u < D) { out[base + row * D + d0 + u] = acc[i][j][u] * inv; }
        }
      }
      if (tx == 0u) { lse[bh * n + row] = select(m[i] + log(l[i]), NEG_INF, l[i] == 0.0); }
    }
  }
}
