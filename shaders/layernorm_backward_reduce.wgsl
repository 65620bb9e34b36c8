// LayerNorm backward, dgamma and dbeta stage 2 of 2: invocation j < 2C sums partial[k][j] over the
// chunks k (see layernorm_backward_partial.wgsl) into dgamma (j < C) or dbeta (j ≥ C).
struct Params { cols: u32, chunks: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(3) var<storage, read_write> dbeta: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let j = gid.x + gid.y * nwg.x * 64u;
  let w = 2u * P.cols;
  if (j >= w) { return; }
  var s = 0.0;
  for (var k = 0u; k < P.chunks; k++) { s += partial[k * w + j]; }
  if (j < P.cols) { dgamma[j] = s; } else { dbeta[j - P.cols] = s; }
}
