// Seeded dropout: element i is kept when hash(offset + i) >= thr, where hash is two rounds of the PCG
// output hash (Jarzynski & Olano, "Hash Functions for GPU Rendering", 2020) keyed by the seed:
//   h = pcg(pcg((offset + i) ^ key) + key)       (all u32 arithmetic, wrapping)
// so the mask depends only on (seed, offset, i) and is identical on every adapter; ref/dropout.ts has the
// same hash in TypeScript. thr = round(p · 2^32): P(keep) = 1 − p. mask = kept ? scale : 0 with
// scale = f32(1 / (1 − p)); y = x · mask.
struct Params { n: u32, key: u32, thr: u32, offset: u32, scale: f32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> mask: array<f32>;

fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= P.n) { return; }
  let h = pcg(pcg((P.offset + i) ^ P.key) + P.key);
  let m = select(0.0, P.scale, h >= P.thr);
  mask[i] = m;
  y[i] = x[i] * m;
}
