// Attention backward, dQ, "tiled" variant (for GPUs): a workgroup owns WG query rows (one per
// invocation) and walks the keys in blocks of BK staged in workgroup memory (K and V).
// P_ij = exp(scale·q_i·k_j + mask_ij - lse_i); dP_ij = dOs_i·v_j; dS = P ∘ (dP - Di); dQ_i = scale·Σ_j dS_ij k_j.
//#include "attention_bwd_inputs"
@group(0) @binding(7) var<storage, read_write> dq: array<f32>;

const D: u32 = {{D}}u;
const BK: u32 = {{BK}}u;
const WG: u32 = {{WG}}u;
const HAS_MASK: bool = {{HAS_MASK}};

var<workgroup> kt: array<f32, BK * D>;
var<workgroup> vt: array<f32, BK * D>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let DL = {{DLOOP}};  // loop bound over D: the constant D (unrolled, arrays in registers) or P.d (software adapters: no unroll)
  let bh = wid.y + wid.z * nwg.y;
  let n = P.n;
  if (bh >= P.bh) { return; }
  let row = wid.x * WG + lid.x;
  let r = min(row, n - 1u);
  let base = bh * n * D;
  let mrow = (bh / P.h) * P.mask_b + (bh % P.h) * P.mask_h + r * n;
  var qr: array<f32, D>;
  var gr: array<f32, D>;
  var acc: array<f32, D>;
  for (var d = 0u; d < DL; d++) {
    qr[d] = q[base + r * D + d] * P.scale;
    gr[d] = dos[base + r * D + d];
  }
  let lse = stats[2u * (bh * n + r)];
  let di = stats[2u * (bh * n + r) + 1u];
  for (var j0 = 0u; j0 < n; j0 += BK) {
    workgroupBarrier();
    for (var idx = lid.x; idx < BK * D; idx += WG) {
      let g = base + min(j0 + idx / D, n - 1u) * D + idx % D;
      kt[idx] = k[g];
      vt[idx] = v[g];
    }
    workgroupBarrier();
    let jn = min(BK, n - j0);
    for (var jj = 0u; jj < jn; jj++) {
      var s = 0.0;
      var dp = 0.0;
      for (var d = 0u; d < DL; d++) {
        s += qr[d] * kt[jj * D + d];
        dp += gr[d] * vt[jj * D + d];
      }
      if (HAS_MASK) { s += mask[mrow + j0 + jj]; }
      let ds = exp(s - lse) * (dp - di);
      for (var d = 0u; d < DL; d++) { acc[d] += ds * kt[jj * D + d]; }
    }
  }
  if (row >= n) { return; }
  for (var d = 0u; d < DL; d++) { dq[base + row * D + d] = acc[d] * P.scale; }
}
