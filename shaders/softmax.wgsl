// Softmax over the last axis, forward: y = exp(x − max) / Σ exp(x − max), one row per team of T
// invocations (T = 1: one invocation per row, no barriers; T = WG: one workgroup per row).
// Three sweeps over the row: the max, then e = exp(x − max) stored into y and summed (blocked), then y ·= 1/Σ.
// −Infinity entries give exp(−inf) = 0; a row of only −Infinity gives NaN (0 · 1/0), as torch does.
{{ENABLE}}
struct Params { rows: u32, cols: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

//#include "row_team"

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = (wid.x + wid.y * nwg.x) * (WG / T) + lid / T;
  let lane = lid % T;
  // Invocations past the last row still take part in the barriers; they just see an empty row.
  let live = row < P.rows;
  let n = select(0u, P.cols, live);
  let base = select(0u, row * P.cols, live);
  var m = -3.4028234663852886e38;
  for (var i = lane; i < n; i += T) { m = max(m, x[base + i]); }
  m = team_max(lid, m);
  // Σ e in blocks (row_block_stride, shaders/lib/row_team.wgsl): a long row's small terms are not lost against the total.
  var s = 0.0;
  let stride = row_block_stride(n);
  for (var i0 = lane; i0 < n; i0 += stride) {
    let i1 = min(i0 + stride, n);
    var b = 0.0;
    for (var i = i0; i < i1; i += T) {
      let e = exp(x[base + i] - m);
      y[base + i] = e;
      b += e;
    }
    s += b;
  }
  s = team_sum(lid, s);
  let inv = 1.0 / s;
  for (var i = lane; i < n; i += T) { y[base + i] = y[base + i] * inv; }
}
