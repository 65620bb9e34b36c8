// Matmul (scalar-load variants: naive, tiled, blocked, subgroup): uniforms, bindings and template constants.
// a: [M, K] ([K, M] if TRANS_A), b: [K, N] ([N, K] if TRANS_B), batch t = workgroup z + z0, b shared over the
// batch when bBatched == 0; c = alpha·op(a)·op(b) (+ bias); bias is bound to a when HAS_BIAS is false. (The vec4 kernels bind a and b as vec4s: matmul_io_vec4.wgsl.)
// KC: 0 here (split-K chunks run in tiled_vec4 only: matmul_io_vec4.wgsl); matmul_store.wgsl reads it.
struct Params { M: u32, N: u32, K: u32, bBatched: u32, z0: u32, alpha: f32, KC: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

const TRANS_A: bool = {{TRANS_A}};
const TRANS_B: bool = {{TRANS_B}};
const HAS_BIAS: bool = {{HAS_BIAS}};
