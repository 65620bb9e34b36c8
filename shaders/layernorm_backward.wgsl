// LayerNorm over the last axis, backward for x: with x̂ = (x − mean)·rstd and g = dy·gamma,
// dx = rstd · (g − mean_C(g) − x̂ · mean_C(g·x̂)). One row per team of T invocations (see softmax.wgsl);
// both row sums are reduced together as a vec2. dgamma and dbeta: layernorm_backward_partial.wgsl.
{{ENABLE}}
struct Params { rows: u32, cols: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> mean_in: array<f32>;
@group(0) @binding(4) var<storage, read> rstd_in: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;

//#include "row_team"

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = (wid.x + wid.y * nwg.x) * (WG / T) + lid / T;
  let lane = lid % T;
  let live = row < P.rows;
  let n = select(0u, P.cols, live);
  let base = select(0u, row * P.cols, live);
  let mu = select(0.0, mean_in[min(row, P.rows - 1u)], live);
  let r = select(0.0, rstd_in[min(row, P.rows - 1u)], live);
  // Both row sums in blocks (row_block_stride, shaders/lib/row_team.wgsl).
  var acc = vec2<f32>(0.0, 0.0);
  let stride = row_block_stride(n);
  for (var i0 = lane; i0 < n; i0 += stride) {
    let i1 = min(i0 + stride, n);
    var b = vec2<f32>(0.0, 0.0);
    for (var i = i0; i < i1; i += T) {
      let g = dy[base + i] * gamma[i];
      b += vec2<f32>(g, g * (x[base + i] - mu) * r);
    }
    acc += b;
  }
  let m = team_sum2(lid, acc) / f32(P.cols);
  for (var i = lane; i < n; i += T) {
    let g = dy[base + i] * gamma[i];
    let xh = (x[base + i] - mu) * r;
    dx[base + i] = r * (g - m.x - xh * m.y);
  }
}
