// General strided copy, the one kernel behind permute/transpose, slice, concat and pad
// (src/kernels/layout.ts): for each multi-index idx of an up-to-8-dim view (dims merged by the launcher),
//   dst[dst_off + Σ idx[d]·ds[d]] = src[src_off + Σ idx[d]·ss[d]].
// permute: dst dense, ss = permuted strides. slice: ss dense strides, src_off = the start corner.
// concat/pad: src dense, ds = the output's strides, dst_off = where this input goes.
// T is f32, or vec4<f32> when the innermost merged dim is contiguous on both sides and every stride, offset and that
// dim's length are multiples of 4 (the launcher then counts shape, strides and offsets in vec4s).
// STORE is `dst[id] = src[is];` (a copy) or `dst[id] = dst[id] + src[is];` (addToSlice: slice's gradient added into
// its region of the parent's gradient; the view never maps two indices to one element, so there are no races).
// The INDEX placeholder is either the generic loop over the uniforms' shape and strides, or (layout.ts specialises every copy of
// 4096+ elements) the same arithmetic with the shape and strides written in as constants: integer division by a
// constant becomes a multiply and shift, and nothing is indexed at run time (lavapipe runs the generic loop's
// per-lane divisions and dynamic uniform indexing ~5× slower).
struct Params {
  n: u32, src_off: u32, dst_off: u32, p0: u32,
  shape: array<vec4<u32>, 2>,
  ss: array<vec4<u32>, 2>,
  ds: array<vec4<u32>, 2>,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> src: array<{{T}}>;
@group(0) @binding(2) var<storage, read_write> dst: array<{{T}}>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= P.n) { return; }
  var rem = i;
  var is = P.src_off;
  var id = P.dst_off;
{{INDEX}}
{{STORE}}
}
