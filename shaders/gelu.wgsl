// GELU, exact erf form (torch.nn.GELU() default): y = x/2 · (1 + erf(x/√2)).
// Forward: y = gelu(x). Backward: dx = dy · (Φ(x) + x·φ(x)).
// erf from erfc by the Chebyshev fit of Numerical Recipes (erfcc): fractional error < 1.2e-7
// everywhere, so |gelu error| stays near f32 rounding (tests allow 1e-6 relative + 1e-6 absolute).
// T is f32, or vec4<f32> when the size is a multiple of 4 (n then counts vec4s; the same arithmetic per lane).
alias T = {{T}};
struct Params { n: u32, mode: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read> dy: array<T>;   // unused in forward mode (bound to x)
@group(0) @binding(3) var<storage, read_write> out: array<T>;

fn erf_t(z: T) -> T {
  let a = abs(z);
  let t = 1.0 / (1.0 + 0.5 * a);
  let erfc_a = t * exp(-a * a - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
      t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
      t * (-0.82215223 + t * 0.17087277)))))))));
  let r = 1.0 - erfc_a;
  return select(r, -r, z < T(0.0));
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= P.n) { return; }
  let v = x[i];
  let cdf = 0.5 * (1.0 + erf_t(v * 0.7071067811865476));
  if (P.mode == 0u) {
    out[i] = v * cdf;
  } else {
    let pdf = 0.3989422804014327 * exp(-0.5 * v * v);
    out[i] = dy[i] * (cdf + v * pdf);
  }
}
