// One pass of a max over the middle axis of an [outer, R, inner] view: thread t owns output [o, c, i]
// of an [outer, nc, inner] result, the max of r in [c·chunk, min(R, (c+1)·chunk)) (never empty: the
// launcher rejects R = 0). Same pass structure as reduce_sum.wgsl.
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
  var m = x[idx];
  for (var r = r0 + 1u; r < r1; r++) {
    idx += P.inner;
    m = max(m, x[idx]);
  }
  out[t] = m * P.scale;
}
