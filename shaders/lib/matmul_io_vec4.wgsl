// Matmul (vec4-load variants: blocked_vec4, tiled_vec4): uniforms, bindings and template constants, as
// matmul_io.wgsl but with a and b bound as vec4s (the launcher picks these kernels only where those loads are aligned).
// KC (tiled_vec4 only): 0, or the chunk of K each layer of workgroups sums in a split-K product (matmul_tiled_vec4.wgsl).
struct Params { M: u32, N: u32, K: u32, bBatched: u32, z0: u32, alpha: f32, KC: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

const TRANS_A: bool = {{TRANS_A}};
const TRANS_B: bool = {{TRANS_B}};
const HAS_BIAS: bool = {{HAS_BIAS}};
