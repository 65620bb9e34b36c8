// Attention backward, step 1 (one invocation per query row): Di = rowsum(dO ∘ O) (FlashAttention-2's
// "delta"), the row's lse made safe for exp(s - lse) (a fully masked row, lse = -inf, becomes +3e38 so
// its probabilities recompute as 0), and dOs = headScale[h]·dO, so the dQ and dK/dV kernels need no
// head-scale binding. stats = (lse_safe, Di) per row. dOs rows are DP ≥ D floats (the 'blocked' kernels
// read them as vec4s: DP = D rounded up to a multiple of 4, the pad zero).
struct Params { rows: u32, n: u32, h: u32, d: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> o: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read> lse: array<f32>;
@group(0) @binding(4) var<storage, read> hscale: array<f32>;  // bound to lse when HAS_HS is false
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;
@group(0) @binding(6) var<storage, read_write> dos: array<f32>;

const D: u32 = {{D}}u;
const DP: u32 = {{DP}}u;
const HAS_HS: bool = {{HAS_HS}};

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let DL = {{DLOOP}};  // loop bound over D: the constant D (unrolled, arrays in registers) or P.d (software adapters: no unroll)
  let r = gid.x + gid.y * nwg.x * 64u;
  if (r >= P.rows) { return; }
  var hs = 1.0;
  if (HAS_HS) { hs = hscale[(r / P.n) % P.h]; }
  var di = 0.0;
  for (var d = 0u; d < DL; d++) {
    let g = dout[r * D + d];
    di += g * o[r * D + d];
    dos[r * DP + d] = g * hs;
  }
  for (var d = D; d < DP; d++) { dos[r * DP + d] = 0.0; }
  let l = lse[r];
  stats[2u * r] = select(l, 3.0e38, l < -3.0e38);
  stats[2u * r + 1u] = di;
}
