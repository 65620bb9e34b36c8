// Attention forward (rows and tiled variants): uniforms, bindings and template constants.
struct Params { n: u32, bh: u32, h: u32, mask_b: u32, mask_h: u32, scale: f32, neg_inf: f32, d: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<f32>;    // bound to q when HAS_MASK is false
@group(0) @binding(5) var<storage, read> hscale: array<f32>;  // bound to q when HAS_HS is false
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read_write> lse: array<f32>;

const D: u32 = {{D}}u;
const BK: u32 = {{BK}}u;
const WG: u32 = {{WG}}u;
const HAS_MASK: bool = {{HAS_MASK}};
const HAS_HS: bool = {{HAS_HS}};
