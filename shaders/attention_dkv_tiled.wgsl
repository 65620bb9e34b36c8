// Attention backward, dK and dV, "tiled" variant (for GPUs): a workgroup owns WG key rows (one per
// invocation) and walks the query rows in blocks of BK, staging Q, dOs and the rows' (lse, Di) in
// workgroup memory. No atomics: each invocation sums over all query rows for its key.
// dV_j = Σ_i P_ij dOs_i; dK_j = scale·Σ_i dS_ij q_i, dS = P ∘ (dOs_i·v_j - Di).
//#include "attention_bwd_inputs"
@group(0) @binding(7) var<storage, read_write> dk: array<f32>;
@group(0) @binding(8) var<storage, read_write> dv: array<f32>;

const D: u32 = {{D}}u;
const BK: u32 = {{BK}}u;
const WG: u32 = {{WG}}u;
const HAS_MASK: bool = {{HAS_MASK}};

var<workgroup> qt: array<f32, BK * D>;
var<workgroup> gt: array<f32, BK * D>;
var<workgroup> st: array<f32, BK * 2u>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let DL = {{DLOOP}};  // loop bound over D: the constant D (unrolled, arrays in registers) or P.d (software adapters: no unroll)
  let bh = wid.y + wid.z * nwg.y;
  let n = P.n;
  if (bh >= P.bh) { return; }
  let col = wid.x * WG + lid.x;
  let c = min(col, n - 1u);
  let base = bh * n * D;
  let mbase = (bh / P.h) * P.mask_b + (bh % P.h) * P.mask_h + c;
  var kr: array<f32, D>;
  var vr: array<f32, D>;
  var gk: array<f32, D>;
  var gv: array<f32, D>;
  for (var d = 0u; d < DL; d++) {
    kr[d] = k[base + c * D + d] * P.scale;
    vr[d] = v[base + c * D + d];
  }
  for (var i0 = 0u; i0 < n; i0 += BK) {
    workgroupBarrier();
    for (var idx = lid.x; idx < BK * D; idx += WG) {
      let g = base + min(i0 + idx / D, n - 1u) * D + idx % D;
      qt[idx] = q[g];
      gt[idx] = dos[g];
    }
    for (var idx = lid.x; idx < BK * 2u; idx += WG) {
      st[idx] = stats[2u * (bh * n + min(i0 + idx / 2u, n - 1u)) + idx % 2u];
    }
    workgroupBarrier();
    let in_ = min(BK, n - i0);
    for (var ii = 0u; ii < in_; ii++) {
      var s = 0.0;
      var dp = 0.0;
      for (var d = 0u; d < DL; d++) {
        s += qt[ii * D + d] * kr[d];
        dp += gt[ii * D + d] * vr[d];
      }
      if (HAS_MASK) { s += mask[mbase + (i0 + ii) * n]; }
      let p = exp(s - st[2u * ii]);
      let ds = p * (dp - st[2u * ii + 1u]);
      for (var d = 0u; d < DL; d++) {
        gv[d] += p * gt[ii * D + d];
        gk[d] += ds * qt[ii * D + d];
      }
    }
  }
  if (col >= n) { return; }
  for (var d = 0u; d < DL; d++) {
    dk[base + col * D + d] = gk[d] * P.scale;
    dv[base + col * D + d] = gv[d];
  }
}
