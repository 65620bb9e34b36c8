// Transpose of the last two axes, [batch, R, C] → [batch, C, R], both R and C multiples of 4 (src/kernels/layout.ts's
// transpose takes this kernel then, the strided-copy permute otherwise). Each invocation moves one 4×4 block: four vec4
// loads along a row of the input, four vec4 stores along a row of the output, the block transposed in registers.
// Consecutive invocations take consecutive blocks of one input row band, so their loads are contiguous; no workgroup
// memory and no barriers (lavapipe runs those slowly; the strided copy it replaces loads one float per lane, a gather).
struct Params { blocks: u32, r4: u32, c4: u32, p0: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= P.blocks) { return; }
  let per = P.r4 * P.c4;            // blocks per matrix
  let t = i / per;
  let rem = i - t * per;
  let bi = rem / P.c4;              // block row (input rows 4bi..4bi+3)
  let bj = rem - bi * P.c4;         // block column (input columns 4bj..4bj+3)
  let base = t * per * 4u;          // vec4s per matrix: R·C/4 = 4·r4·c4
  let s = base + 4u * bi * P.c4 + bj;
  let v0 = src[s];
  let v1 = src[s + P.c4];
  let v2 = src[s + 2u * P.c4];
  let v3 = src[s + 3u * P.c4];
  let d = base + 4u * bj * P.r4 + bi;
  dst[d] = vec4<f32>(v0.x, v1.x, v2.x, v3.x);
  dst[d + P.r4] = vec4<f32>(v0.y, v1.y, v2.y, v3.y);
  dst[d + 2u * P.r4] = vec4<f32>(v0.z, v1.z, v2.z, v3.z);
  dst[d + 3u * P.r4] = vec4<f32>(v0.w, v1.w, v2.w, v3.w);
}
