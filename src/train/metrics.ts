// Classification metrics from predictions: the confusion matrix (rows = true class, columns = predicted), accuracy,
// per-class precision / recall / F1 / support, macro averages. Pure (no GPU, no Node imports).

export interface ClassMetrics {
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

export interface ClassificationReport {
  /** Fraction of items whose predicted class is the true class (0 with no items). */
  accuracy: number;
  /** Items counted. */
  count: number;
  /** confusion[t][p]: items of true class t predicted as p. */
  confusion: number[][];
  /** By label, in class order. */
  per_class: Record<string, ClassMetrics>;
  /** Unweighted means of the per-class values over classes with support > 0. */
  macro: { precision: number; recall: number; f1: number };
}

/** An empty C×C confusion matrix. */
export function emptyConfusion(numClasses: number): number[][] {
  return Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
}

/** Index of the largest value of row r of a row-major [n, C] array (the first on ties, as torch.argmax on CPU). */
export function argmaxRow(logits: ArrayLike<number>, r: number, C: number): number {
  let best = 0;
  let bv = -Infinity;
  for (let c = 0; c < C; c++) {
    const v = logits[r * C + c];
    if (v > bv || (Number.isNaN(v) && !Number.isNaN(bv))) {
      bv = v;
      best = c;
    }
  }
  return best;
}

/** Add a batch of predictions to a confusion matrix. */
export function accumulateConfusion(confusion: number[][], truth: ArrayLike<number>, predicted: ArrayLike<number>): void {
  const C = confusion.length;
  if (truth.length !== predicted.length) throw new RangeError(`confusion: ${truth.length} labels but ${predicted.length} predictions`);
  for (let i = 0; i < truth.length; i++) {
    const t = truth[i];
    const p = predicted[i];
    if (!(Number.isInteger(t) && t >= 0 && t < C)) throw new RangeError(`confusion: true label ${t} is not a class index 0..${C - 1}`);
    if (!(Number.isInteger(p) && p >= 0 && p < C)) throw new RangeError(`confusion: predicted label ${p} is not a class index 0..${C - 1}`);
    confusion[t][p]++;
  }
}

/** Confusion matrix from true and predicted class indices. */
export function confusionMatrix(truth: ArrayLike<number>, predicted: ArrayLike<number>, numClasses: number): number[][] {
  const m = emptyConfusion(numClasses);
  accumulateConfusion(m, truth, predicted);
  return m;
}

/**
 * Accuracy and per-class metrics from a confusion matrix. A class never predicted has precision 0, a class with no
 * items recall 0 (scikit-learn's zero_division=0); F1 is 0 when precision + recall is 0.
 */
export function reportFromConfusion(confusion: number[][], labels: readonly string[]): ClassificationReport {
  const C = confusion.length;
  if (labels.length !== C) throw new RangeError(`metrics: ${labels.length} labels for a ${C}×${C} confusion matrix`);
  let correct = 0;
  let count = 0;
  const colSum = new Array<number>(C).fill(0);
  for (let t = 0; t < C; t++) {
    for (let p = 0; p < C; p++) {
      count += confusion[t][p];
      colSum[p] += confusion[t][p];
    }
    correct += confusion[t][t];
  }
  const per_class: Record<string, ClassMetrics> = {};
  let mp = 0;
  let mr = 0;
  let mf = 0;
  let present = 0;
  for (let c = 0; c < C; c++) {
    const support = confusion[c].reduce((a, b) => a + b, 0);
    const tp = confusion[c][c];
    const precision = colSum[c] > 0 ? tp / colSum[c] : 0;
    const recall = support > 0 ? tp / support : 0;
    const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
    per_class[labels[c]] = { precision, recall, f1, support };
    if (support > 0) {
      present++;
      mp += precision;
      mr += recall;
      mf += f1;
    }
  }
  return {
    accuracy: count ? correct / count : 0,
    count,
    confusion: confusion.map((r) => [...r]),
    per_class,
    macro: present ? { precision: mp / present, recall: mr / present, f1: mf / present } : { precision: 0, recall: 0, f1: 0 },
  };
}

/** Rows divided by their sums (a row without items stays 0). */
export function rowNormalise(confusion: number[][]): number[][] {
  return confusion.map((r) => {
    const s = r.reduce((a, b) => a + b, 0);
    return r.map((v) => (s ? v / s : 0));
  });
}

const f3 = (x: number) => x.toFixed(3);

/** A printable per-class table and the confusion matrix (counts), for the CLI. */
export function formatReport(r: ClassificationReport, labels: readonly string[], title = ''): string {
  const lines: string[] = [];
  if (title) lines.push(title);
  lines.push(`accuracy ${(100 * r.accuracy).toFixed(2)}% (${Math.round(r.accuracy * r.count)}/${r.count})`);
  const w = Math.max(5, ...labels.map((l) => l.length));
  lines.push('');
  lines.push(`${'class'.padEnd(w)}  precision  recall  f1     support`);
  // A class with no items has no recall (and no F1): '—' here, not a 0 that reads as "all missed" (the JSON keeps
  // scikit-learn's zero_division=0, and the macro average leaves the class out). Precision is undefined where the
  // class was never predicted: '—' too.
  const absent: string[] = [];
  labels.forEach((l, c) => {
    const m = r.per_class[l];
    const predicted = r.confusion.reduce((a, row) => a + row[c], 0);
    if (m.support === 0) absent.push(l);
    const p = predicted > 0 ? f3(m.precision) : '—';
    const rc = m.support > 0 ? f3(m.recall) : '—';
    const f = m.support > 0 ? f3(m.f1) : '—'; // (0 for a present class never predicted: tp = 0)
    lines.push(`${l.padEnd(w)}  ${p.padStart(9)}  ${rc.padStart(6)}  ${f.padStart(5)}  ${String(m.support).padStart(7)}`);
  });
  lines.push(`${'macro avg'.padEnd(w)}  ${f3(r.macro.precision).padStart(9)}  ${f3(r.macro.recall).padStart(6)}  ${f3(r.macro.f1).padStart(5)}  ${String(r.count).padStart(7)}`);
  if (absent.length && r.count > 0) {
    lines.push(`note: no images of ${absent.join(', ')} here: recall and F1 undefined (—), left out of the macro average (over ${labels.length - absent.length} of ${labels.length} classes)`);
  }
  lines.push('');
  lines.push('confusion matrix (rows: true class, columns: predicted; column k = class k above)');
  const cw = Math.max(3, ...r.confusion.flat().map((v) => String(v).length));
  lines.push(`${''.padEnd(w)}  ${labels.map((_, k) => String(k).padStart(cw)).join(' ')}`);
  r.confusion.forEach((row, t) => lines.push(`${labels[t].padEnd(w)}  ${row.map((v) => String(v).padStart(cw)).join(' ')}`));
  return lines.join('\n');
}
