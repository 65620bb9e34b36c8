// Float64 reference for softmax over the last axis (rows of length cols, row-major).

export function softmaxForwardRef(x: ArrayLike<number>, cols: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r * cols < x.length; r++) {
    const o = r * cols;
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, x[o + c]);
    let s = 0;
    for (let c = 0; c < cols; c++) s += (y[o + c] = Math.exp(x[o + c] - m));
    for (let c = 0; c < cols; c++) y[o + c] /= s;
  }
  return y;
}

/** dx = y ∘ (dy − Σ dy ∘ y) per row. */
export function softmaxBackwardRef(y: ArrayLike<number>, dy: ArrayLike<number>, cols: number): Float64Array {
  const dx = new Float64Array(y.length);
  for (let r = 0; r * cols < y.length; r++) {
    const o = r * cols;
    let d = 0;
    for (let c = 0; c < cols; c++) d += dy[o + c] * y[o + c];
    for (let c = 0; c < cols; c++) dx[o + c] = y[o + c] * (dy[o + c] - d);
  }
  return dx;
}

/** Alias of softmaxForwardRef (the name the self-check uses). */
export const softmaxRef = softmaxForwardRef;
