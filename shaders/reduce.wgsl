// One pass of a reduction (sum or max) over the middle axis of an [outer, R, inner] view (the launcher,
// src/kernels/reduce.ts, merges adjacent dims to get it). Thread t owns output [o, c, i] of an [outer, nc, inner]
// result and folds the elements r in [c·chunk, min(R, (c+1)·chunk)) (never empty: the launcher handles R = 0).
// Neighbouring threads read neighbouring i, so reads coalesce when inner > 1. The launcher repeats passes
// (R -> nc -> ...) until R = 1; the last pass multiplies by P.scale (1/count for mean, 1 otherwise).
// The accumulator is the launcher's choice:
//   sum  Neumaier (improved Kahan) compensation: the error is ~2 ulp of Σ|x| whatever the chunk length;
//   max  a running max, started from the chunk's first element.
struct Params { total: u32, inner: u32, nc: u32, r: u32, chunk: u32, scale: f32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * 256u;
  if (t >= P.total) { return; }
  let i = t % P.inner;
  let rest = t / P.inner;
  let c = rest % P.nc;
  let o = rest / P.nc;
  let r0 = c * P.chunk;
  let r1 = min(P.r, r0 + P.chunk);
  var idx = (o * P.r + r0) * P.inner + i;
{{INIT}}
  for (var r = r0; r < r1; r++) {
    let v = x[idx];
{{STEP}}
    idx += P.inner;
  }
  out[t] = ({{RESULT}}) * P.scale;
}
