// The scalar store of the matmul kernels (tiled, tiled_vec4, subgroup): C[t][m][n] = alpha·v (+ bias[n]) inside the
// matrix, nothing outside it. In a split-K product (P.KC > 0) layer t holds one chunk's partial sum: the bias goes
// into layer 0 alone, so the launcher's sum over the layers adds it once.
fn store(t: u32, m: u32, n: u32, v: f32) {
  if (m < P.M && n < P.N) {
    var s = P.alpha * v;
    if (HAS_BIAS && (P.KC == 0u || t == 0u)) { s += bias[n]; }
    c[(t * P.M + m) * P.N + n] = s;
  }
}
