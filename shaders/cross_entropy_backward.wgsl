// Cross-entropy backward, one invocation per logit:
//   dlogits[i, c] = dloss / N · (exp(x[i, c] − lse[i]) − target[i, c]),
//   target = (1 − ε)·[c == label_i] + ε/C.
// A row whose label is outside [0, C) or not an integer gets NaN gradients (see cross_entropy.wgsl).
struct Params { rows: u32, cols: u32, smoothing: f32, nan_bits: u32, inv_n: f32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<f32>;
@group(0) @binding(3) var<storage, read> lse: array<f32>;
@group(0) @binding(4) var<storage, read> dloss: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * 256u;
  if (idx >= P.rows * P.cols) { return; }
  let row = idx / P.cols;
  let c = idx - row * P.cols;
  let lab = labels[row];
  let ok = lab >= 0.0 && lab < f32(P.cols) && floor(lab) == lab;
  let hit = select(0.0, 1.0 - P.smoothing, ok && u32(lab) == c);
  let t = hit + P.smoothing / f32(P.cols);
  let g = dloss[0] * P.inv_n * (exp(x[idx] - lse[row]) - t);
  dx[idx] = select(bitcast<f32>(P.nan_bits), g, ok);
}
