// Attention backward (flash dQ and dK/dV passes): one row's values d0..d0+3 of q, dos, k or v as a vec4, for
// staging tiles along D. Needs the bindings of attention_bwd_inputs and the shader's constant D.
// Values d0..d0+3 of row r of q (which 0), dos (1), k (2) or v (3), [n, D] at offset a, as a vec4, zero past D.
fn row4(a: u32, which: u32, r: u32, d0: u32) -> vec4<f32> {
  var x = vec4<f32>(0.0);
  for (var u = 0u; u < 4u; u++) {
    if (d0 + u < D) {
      let i = a + r * D + d0 + u;
      switch which {
        case 0u: { x[u] = q[i]; }
        case 1u: { x[u] = dos[i]; }
        case 2u: { x[u] = k[i]; }
        default: { x[u] = v[i]; }
      }
    }
  }
  return x;
}
