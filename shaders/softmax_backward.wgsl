// Softmax over the last axis, backward: dx = y ∘ (dy − Σ_row dy ∘ y), one row per team of T
// invocations (see softmax.wgsl).
{{ENABLE}}
struct Params { rows: u32, cols: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

//#include "row_team"

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = (wid.x + wid.y * nwg.x) * (WG / T) + lid / T;
  let lane = lid % T;
  let live = row < P.rows;
  let n = select(0u, P.cols, live);
  let base = select(0u, row * P.cols, live);
  // Σ dy·y in blocks (row_block_stride, shaders/lib/row_team.wgsl).
  var d = 0.0;
  let stride = row_block_stride(n);
  for (var i0 = lane; i0 < n; i0 += stride) {
    let i1 = min(i0 + stride, n);
    var b = 0.0;
    for (var i = i0; i < i1; i += T) { b += dy[base + i] * y[base + i]; }
    d += b;
  }
  d = team_sum(lid, d);
  for (var i = lane; i < n; i += T) { dx[base + i] = y[base + i] * (dy[base + i] - d); }
}
