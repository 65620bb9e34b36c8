// Cross-entropy of logits [N, C] against integer class labels, mean over N, with optional label
// smoothing as torch.nn.CrossEntropyLoss(label_smoothing=ε). WGSL: shaders/cross_entropy.wgsl (row
// lse and losses), shaders/cross_entropy_mean.wgsl (the mean), shaders/cross_entropy_backward.wgsl.
// Reference: ref/crossEntropy.ts. Row kernels use rowPlan() (see softmax.ts).
import { dispatch, grid2d, packUniforms, pipeline } from './launch.js';
import { GpuArray, fmt } from './memory.js';
import { rowPipeline, rowPlan } from './softmax.js';

export interface CrossEntropyOptions {
  /** ε in [0, 1]: the target is (1 − ε)·onehot + ε/C. Default 0. */
  labelSmoothing?: number;
}

/** Labels are f32 class indices, exact below 2^24. */
export const MAX_CLASSES = 2 ** 24;
const NAN_BITS = 0x7fc00000;

/**
 * Throw a RangeError naming the first label that is not an integer in [0, numClasses). The kernels
 * cannot throw: for such a label they give a NaN loss (and NaN gradients for its row).
 */
export function checkLabels(labels: ArrayLike<number>, numClasses: number): void {
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (!(Number.isInteger(l) && l >= 0 && l < numClasses)) {
      throw new RangeError(`checkLabels: label ${l} at index ${i} is not an integer class index in [0, ${numClasses})`);
    }
  }
}

function shapes(op: string, logits: GpuArray, labels: GpuArray, opts: CrossEntropyOptions): [number, number, number] {
  if (logits.rank !== 2) throw new RangeError(`${op}: logits must be [N, C], got ${fmt(logits.shape)}`);
  const [n, c] = logits.shape;
  if (labels.rank !== 1 || labels.shape[0] !== n) throw new RangeError(`${op}: labels ${fmt(labels.shape)} must be [${n}] for logits ${fmt(logits.shape)}`);
  if (c < 1 || c >= MAX_CLASSES) throw new RangeError(`${op}: ${c} classes in logits ${fmt(logits.shape)}; need 1 to ${MAX_CLASSES - 1} (labels are f32)`);
  const eps = opts.labelSmoothing ?? 0;
  if (!(eps >= 0 && eps <= 1)) throw new RangeError(`${op}: labelSmoothing must be in [0, 1], got ${eps}`);
  return [n, c, eps];
}

/** Mean cross-entropy loss [1] and each row's log-sum-exp [N] (saved for backward). */
export function crossEntropyForward(logits: GpuArray, labels: GpuArray, opts: CrossEntropyOptions = {}): { loss: GpuArray; lse: GpuArray } {
  const op = 'crossEntropyForward';
  const [n, c, eps] = shapes(op, logits, labels, opts);
  const loss = GpuArray.empty([1], op);
  const lse = GpuArray.empty([n], op);
  const rowLoss = GpuArray.empty([n], op);
  const p = rowPlan(n, c);
  dispatch(
    op,
    rowPipeline('cross_entropy', p),
    [logits.buffer, labels.buffer, lse.buffer, rowLoss.buffer],
    packUniforms([['u32', n], ['u32', c], ['f32', eps], ['u32', NAN_BITS]]),
    p.groups,
  );
  // N = 0 gives 0/0 = NaN, as torch's mean over nothing.
  dispatch(`${op} mean`, pipeline('cross_entropy_mean'), [rowLoss.buffer, loss.buffer], packUniforms([['u32', n]]), [1]);
  rowLoss.dispose(); // back to the pool; the recorded passes keep the buffer until they run
  return { loss, lse };
}

/** dlogits [N, C] = dloss/N · (softmax(logits) − target), from the forward's lse. */
export function crossEntropyBackward(logits: GpuArray, labels: GpuArray, lse: GpuArray, dloss: GpuArray, opts: CrossEntropyOptions = {}): GpuArray {
  const op = 'crossEntropyBackward';
  const [n, c, eps] = shapes(op, logits, labels, opts);
  if (lse.rank !== 1 || lse.shape[0] !== n) throw new RangeError(`${op}: lse ${fmt(lse.shape)} must be [${n}] for logits ${fmt(logits.shape)}`);
  if (dloss.size !== 1) throw new RangeError(`${op}: dloss ${fmt(dloss.shape)} must hold one value`);
  const dx = GpuArray.empty(logits.shape, op);
  if (n === 0) return dx;
  dispatch(
    op,
    pipeline('cross_entropy_backward'),
    [logits.buffer, labels.buffer, lse.buffer, dloss.buffer, dx.buffer],
    packUniforms([['u32', n], ['u32', c], ['f32', eps], ['u32', NAN_BITS], ['f32', 1 / n]]),
    grid2d(Math.ceil((n * c) / 256)),
  );
  return dx;
}
