// The scalar store of the matmul kernels (tiled, tiled_vec4, subgroup): C[t][m][n] = alpha·v (+ bias[n]) inside the
// matrix, nothing outside it.
fn store(t: u32, m: u32, n: u32, v: f32) {
  if (m < P.M && n < P.N) {
    var s = P.alpha * v;
    if (HAS_BIAS) { s += bias[n]; }
    c[(t * P.M + m) * P.N + n] = s;
  }
}
