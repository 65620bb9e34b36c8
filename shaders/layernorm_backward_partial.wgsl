// LayerNorm backward, dgamma and dbeta stage 1 of 2 (no float atomics): invocation (chunk, c) sums
// dy·x̂ and dy down column c over the rows of its chunk (P.chunk_rows consecutive rows) into
// partial[chunk][c] and partial[chunk][C + c]. Neighbouring invocations read neighbouring columns,
// so loads coalesce. Stage 2 (layernorm_backward_reduce.wgsl) sums the chunks.
struct Params { rows: u32, cols: u32, chunk_rows: u32, col_blocks: u32, chunks: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> mean_in: array<f32>;
@group(0) @binding(3) var<storage, read> rstd_in: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> partial: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let g = wid.x + wid.y * nwg.x;
  let chunk = g / P.col_blocks;
  let c = (g % P.col_blocks) * 64u + lid;
  if (chunk >= P.chunks || c >= P.cols) { return; }
  let r0 = chunk * P.chunk_rows;
  let r1 = min(r0 + P.chunk_rows, P.rows);
  var dg = 0.0;
  var db = 0.0;
  for (var r = r0; r < r1; r++) {
    let d = dy[r * P.cols + c];
    dg += d * (x[r * P.cols + c] - mean_in[r]) * rstd_in[r];
    db += d;
  }
  partial[chunk * 2u * P.cols + c] = dg;
  partial[chunk * 2u * P.cols + P.cols + c] = db;
}
