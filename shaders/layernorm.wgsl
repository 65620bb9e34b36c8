// LayerNorm over the last axis, forward: y = (x − mean) · rstd · gamma + beta with
// rstd = 1/sqrt(var + eps), var the biased variance (as torch). One row per team of T invocations
// (see softmax.wgsl). Two sweeps for the statistics, then one to write y; mean and rstd are saved
// for backward. The mean is summed as x0 + Σ(x − x0)/C with x0 the row's first entry, so a row with
// a large common offset loses no accuracy to it, and the variance as Σ(x − mean)²/C (two-pass: no
// cancellation between Σx² and (Σx)²). Both sums are blocked (row_block_stride in lib/row_team.wgsl):
// Σ(x − x0) drifts by (mean − x0) per term and Σ(x − mean)² grows with every term, so a plain running
// sum's error grows with the row (mean off by 2.7e-5 at 100 000 columns of [-2, 2]).
{{ENABLE}}
struct Params { rows: u32, cols: u32, eps: f32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> mean_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd_out: array<f32>;

//#include "row_team"

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = (wid.x + wid.y * nwg.x) * (WG / T) + lid / T;
  let lane = lid % T;
  let live = row < P.rows;
  let n = select(0u, P.cols, live);
  let base = select(0u, row * P.cols, live);
  let inv_c = 1.0 / f32(P.cols);
  let x0 = select(0.0, x[base], live);
  // Both sums in blocks (row_block_stride, shaders/lib/row_team.wgsl).
  let stride = row_block_stride(n);
  var s = 0.0;
  for (var i0 = lane; i0 < n; i0 += stride) {
    let i1 = min(i0 + stride, n);
    var b = 0.0;
    for (var i = i0; i < i1; i += T) { b += x[base + i] - x0; }
    s += b;
  }
  let mu = x0 + team_sum(lid, s) * inv_c;
  var q = 0.0;
  for (var i0 = lane; i0 < n; i0 += stride) {
    let i1 = min(i0 + stride, n);
    var b = 0.0;
    for (var i = i0; i < i1; i += T) { let d = x[base + i] - mu; b += d * d; }
    q += b;
  }
  let r = inverseSqrt(team_sum(lid, q) * inv_c + P.eps);
  for (var i = lane; i < n; i += T) { y[base + i] = (x[base + i] - mu) * r * gamma[i] + beta[i]; }
  if (live && lane == 0u) {
    mean_out[row] = mu;
    rstd_out[row] = r;
  }
}
