// General strided copy, the one kernel behind permute/transpose, slice, concat and pad
// (src/kernels/layout.ts): for each multi-index idx of a {{RANK}}-dim view (dims merged by the launcher),
//   dst[dst_off + Σ idx[d]·ds[d]] = src[src_off + Σ idx[d]·ss[d]].
// permute: dst dense, ss = permuted strides. slice: ss dense strides, src_off = the start corner.
// concat/pad: src dense, ds = the output's strides, dst_off = where this input goes.
struct Params {
  n: u32, src_off: u32, dst_off: u32, p0: u32,
  shape: array<vec4<u32>, 2>,
  ss: array<vec4<u32>, 2>,
  ds: array<vec4<u32>, 2>,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= P.n) { return; }
  var rem = i;
  var is = P.src_off;
  var id = P.dst_off;
  for (var d = {{RANK}}u; d > 0u; d--) {
    let k = d - 1u;
    let s = P.shape[k / 4u][k % 4u];
    let idx = rem % s;
    rem = rem / s;
    is += idx * P.ss[k / 4u][k % 4u];
    id += idx * P.ds[k / 4u][k % 4u];
  }
  dst[id] = src[is];
}
