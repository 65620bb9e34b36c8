// Cross-entropy forward, stage 2 of 2: loss[0] = mean of the row losses, by one workgroup (each
// invocation sums a strided slice serially, then a tree reduction in workgroup memory).
struct Params { rows: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> row_loss: array<f32>;
@group(0) @binding(2) var<storage, read_write> loss: array<f32>;

const WG: u32 = 256u;
var<workgroup> sh: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var i = lid; i < P.rows; i += WG) { s += row_loss[i]; }
  sh[lid] = s;
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    workgroupBarrier();
    if (lid < k) { sh[lid] += sh[lid + k]; }
  }
  if (lid == 0u) { loss[0] = sh[0] / f32(P.rows); }
}
