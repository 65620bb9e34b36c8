// Float64 reference for cross-entropy with integer labels, mean over rows, optional label
// smoothing ε (torch.nn.CrossEntropyLoss(label_smoothing=ε): target = (1 − ε)·onehot + ε/C).

export interface CrossEntropyRefOut {
  loss: number;
  lse: Float64Array;
}

export function crossEntropyRef(logits: ArrayLike<number>, labels: ArrayLike<number>, cols: number, opts: { labelSmoothing?: number } = {}): CrossEntropyRefOut {
  const eps = opts.labelSmoothing ?? 0;
  const rows = labels.length;
  const lse = new Float64Array(rows);
  let total = 0;
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, logits[o + c]);
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(logits[o + c] - m);
    lse[r] = m + Math.log(s);
    // −Σ_c target_c · log p_c with log p_c = x_c − lse.
    let rowLoss = 0;
    for (let c = 0; c < cols; c++) {
      const t = (c === labels[r] ? 1 - eps : 0) + eps / cols;
      rowLoss -= t * (logits[o + c] - lse[r]);
    }
    total += rowLoss;
  }
  return { loss: total / rows, lse };
}

/** d loss / d logits, times dloss: dloss/N · (softmax − target). */
export function crossEntropyBackwardRef(logits: ArrayLike<number>, labels: ArrayLike<number>, cols: number, dloss = 1, opts: { labelSmoothing?: number } = {}): Float64Array {
  const eps = opts.labelSmoothing ?? 0;
  const rows = labels.length;
  const { lse } = crossEntropyRef(logits, labels, cols, opts);
  const dx = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const t = (c === labels[r] ? 1 - eps : 0) + eps / cols;
      dx[r * cols + c] = (dloss / rows) * (Math.exp(logits[r * cols + c] - lse[r]) - t);
    }
  }
  return dx;
}
