// Cross-entropy forward, per row (stage 1 of 2): lse = log Σ exp(x) (max-shifted) and the row loss
//   loss_i = lse − (1 − ε)·x[label] − (ε/C)·Σ_c x_c
// which is −Σ_c target_c · log softmax(x)_c for target = (1 − ε)·onehot + ε/C (torch's
// label_smoothing). One row per team of T invocations (see softmax.wgsl). A label outside [0, C) or
// not an integer gives a NaN row loss (never an out-of-bounds read); the host validates labels it
// knows (checkLabels). Stage 2, cross_entropy_mean.wgsl, averages the row losses.
{{ENABLE}}
struct Params { rows: u32, cols: u32, smoothing: f32, nan_bits: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<f32>;
@group(0) @binding(3) var<storage, read_write> lse_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> row_loss: array<f32>;

//#include "row_team"

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = (wid.x + wid.y * nwg.x) * (WG / T) + lid / T;
  let lane = lid % T;
  let live = row < P.rows;
  let n = select(0u, P.cols, live);
  let base = select(0u, row * P.cols, live);
  var m = -3.4028234663852886e38;
  for (var i = lane; i < n; i += T) { m = max(m, x[base + i]); }
  m = team_max(lid, m);
  var acc = vec2<f32>(0.0, 0.0);   // (Σ exp(x − m), Σ x)
  for (var i = lane; i < n; i += T) {
    let v = x[base + i];
    acc += vec2<f32>(exp(v - m), v);
  }
  acc = team_sum2(lid, acc);
  if (live && lane == 0u) {
    let lse = m + log(acc.x);
    let lab = labels[row];
    let ok = lab >= 0.0 && lab < f32(P.cols) && floor(lab) == lab;
    let xl = x[base + select(0u, u32(lab), ok)];
    let loss = lse - (1.0 - P.smoothing) * xl - P.smoothing / f32(P.cols) * acc.y;
    lse_out[row] = lse;
    row_loss[row] = select(bitcast<f32>(P.nan_bits), loss, ok);
  }
}
