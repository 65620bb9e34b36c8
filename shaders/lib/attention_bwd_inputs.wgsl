// Attention backward (rows, tiled and flash dQ / dK-dV passes): uniforms and the input bindings 0–6.
struct Params { n: u32, bh: u32, h: u32, mask_b: u32, mask_h: u32, scale: f32, pad: u32, d: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<f32>;   // bound to q when HAS_MASK is false
@group(0) @binding(5) var<storage, read> stats: array<f32>;  // (lse_safe, Di) per row
@group(0) @binding(6) var<storage, read> dos: array<f32>;
