// Reverse-mode autograd over GpuArrays: a Tensor records the op that made it and a backward rule;
// backward() walks the graph in reverse topological order and accumulates gradients.
import { GpuArray, fmt, keep, type HoldsGpuArrays, type Shape } from '../kernels/memory.js';
import { addInPlace } from '../kernels/elementwise.js';

/** Given the gradient of the output, the gradient for each parent (null where none is needed). */
export type BackwardFn = (grad: GpuArray) => (GpuArray | null)[];

/**
 * An optional second rule for ops with one parent whose gradient touches only part of the parent (slice): add the
 * output's gradient into `into`, the parent's gradient accumulated so far, and return it; or, when `into` is null,
 * return a new array holding the whole contribution. Saves building a mostly-zero array and adding it.
 */
export type BackwardIntoFn = (grad: GpuArray, into: GpuArray | null) => GpuArray;

let gradEnabled = true;

/** Run fn without recording the graph (inference, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    const r = fn();
    if (r instanceof Promise) {
      return r.finally(() => {
        gradEnabled = prev;
      }) as T;
    }
    gradEnabled = prev;
    return r;
  } catch (e) {
    gradEnabled = prev;
    throw e;
  }
}

export function isGradEnabled(): boolean {
  return gradEnabled;
}

let nextId = 0;

export class Tensor implements HoldsGpuArrays {
  readonly id = nextId++;
  data: GpuArray;
  grad: GpuArray | null = null;
  requiresGrad: boolean;
  /** The op that made this tensor ('leaf' for inputs and parameters). */
  readonly op: string;
  readonly parents: readonly Tensor[];
  private backwardFn: BackwardFn | null;
  private backwardIntoFn: BackwardIntoFn | null;
  /** Arrays the backward rule needs (freed with the graph). */
  private saved: GpuArray[];

  constructor(
    data: GpuArray,
    opts: { requiresGrad?: boolean; op?: string; parents?: Tensor[]; backward?: BackwardFn; backwardInto?: BackwardIntoFn; saved?: GpuArray[] } = {},
  ) {
    this.data = data;
    this.op = opts.op ?? 'leaf';
    const tracked = gradEnabled && !!opts.backward && (opts.parents ?? []).some((p) => p.requiresGrad);
    this.requiresGrad = opts.requiresGrad ?? tracked;
    this.parents = tracked ? opts.parents! : [];
    this.backwardFn = tracked ? opts.backward! : null;
    if (opts.backwardInto && (opts.parents ?? []).length !== 1) throw new Error(`op ${this.op}: backwardInto is for ops with one parent`);
    this.backwardIntoFn = tracked ? opts.backwardInto ?? null : null;
    this.saved = tracked ? opts.saved ?? [] : [];
    if (!tracked) for (const s of opts.saved ?? []) s.dispose();
  }

  static from(data: ArrayLike<number>, shape: Shape, requiresGrad = false): Tensor {
    return new Tensor(GpuArray.fromData(data, shape), { requiresGrad });
  }

  get shape(): number[] {
    return this.data.shape;
  }

  get size(): number {
    return this.data.size;
  }

  get isLeaf(): boolean {
    return this.backwardFn === null;
  }

  *gpuArrays(): Iterable<GpuArray> {
    yield this.data;
    if (this.grad) yield this.grad;
    yield* this.saved;
  }

  async read(): Promise<Float32Array> {
    return this.data.read();
  }

  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new RangeError(`item: the tensor has shape ${fmt(this.shape)}, not one element`);
    return (await this.data.read())[0];
  }

  /**
   * Free an op's output now instead of at the end of the enclosing scope, where no backward rule reads it (a layer can
   * say so: matmul's rule reads its inputs, not its output; add's and permute's read nothing). The node stays in the
   * graph — its shape, its rule, what the rule saved — so gradients still flow through it; only reading its data
   * afterwards is an error (GpuArray: used after dispose), never a stale value. Leaves (parameters, inputs) are not
   * released. Data shared with a view lives on while the view does.
   */
  release(): void {
    if (this.op !== 'leaf') this.data.dispose();
  }

  /** A tensor sharing this one's data, cut from the graph. */
  detach(): Tensor {
    return new Tensor(this.data.view(this.shape));
  }

  /** Accumulate a gradient into this leaf's .grad (takes ownership of g). */
  accumulateGrad(g: GpuArray): void {
    if (!this.grad) this.grad = g;
    else {
      addInPlace(this.grad, g);
      g.dispose();
    }
  }

  /** Free the backward graph's saved arrays (done by backward() as it goes). */
  releaseGraph(): void {
    for (const s of this.saved) s.dispose();
    this.saved = [];
    this.backwardFn = null;
    this.backwardIntoFn = null;
  }

  /**
   * Back-propagate from this tensor. grad defaults to ones for a one-element tensor. Gradients of
   * leaves that require them accumulate into .grad; the graph's saved arrays are freed (no second
   * backward through the same graph).
   */
  backward(grad?: GpuArray): void {
    if (!this.requiresGrad) throw new Error(`backward: the tensor (op ${this.op}, shape ${fmt(this.shape)}) does not require grad; nothing it depends on requires grad`);
    if (!grad) {
      if (this.size !== 1) throw new RangeError(`backward: give a gradient for a tensor of shape ${fmt(this.shape)} (only one-element tensors default to 1)`);
      grad = GpuArray.fromData([1], this.shape, 'backward seed');
    } else if (grad.size !== this.size) {
      throw new RangeError(`backward: gradient ${fmt(grad.shape)} does not match the tensor ${fmt(this.shape)}`);
    } else {
      grad = grad.clone(this.shape);
    }
    // Reverse topological order, iteratively (deep graphs would overflow recursion).
    const order: Tensor[] = [];
    const seen = new Set<Tensor>();
    const stack: [Tensor, number][] = [[this, 0]];
    seen.add(this);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const [t, i] = top;
      if (i < t.parents.length) {
        top[1]++;
        const p = t.parents[i];
        if (p.requiresGrad && !seen.has(p)) {
          seen.add(p);
          stack.push([p, 0]);
        }
      } else {
        stack.pop();
        order.push(t);
      }
    }
    const grads = new Map<Tensor, GpuArray>([[this, grad]]);
    const stored = new Set<GpuArray>([grad]);
    for (let k = order.length - 1; k >= 0; k--) {
      const t = order[k];
      const g = grads.get(t);
      if (!g) continue;
      grads.delete(t);
      if (t.isLeaf) {
        stored.delete(g);
        if (t.requiresGrad) t.accumulateGrad(g);
        else g.dispose();
        continue;
      }
      if (t.backwardIntoFn) {
        // One parent, which requires grad (tracked ops only keep parents when one does): accumulate in place.
        const p = t.parents[0];
        const prev = grads.get(p) ?? null;
        const r = t.backwardIntoFn(g, prev);
        if (prev && r !== prev) throw new Error(`autograd: op ${t.op}'s backwardInto did not accumulate into the gradient it was given`);
        if (r.size !== p.size) throw new Error(`autograd: op ${t.op} gave a gradient ${fmt(r.shape)} for an input of shape ${fmt(p.shape)}`);
        if (!prev) {
          const v = r.shape.length === p.shape.length && r.shape.every((d, i) => d === p.shape[i]) ? r : r.view(p.shape);
          if (v !== r) r.dispose();
          grads.set(p, v);
          stored.add(v);
        }
        stored.delete(g);
        g.dispose();
        t.releaseGraph();
        continue;
      }
      const contributions = t.backwardFn!(g);
      // g's buffer moves to the first parent that receives it (as g or as a view of it, e.g. a broadcast gradient
      // whose reduction was only a reshape); any other receiver gets a copy, so no two gradients share a buffer.
      let gMoved = false;
      let gKept = false; // the g array itself (not a view) went to a parent
      t.parents.forEach((p, j) => {
        let c = contributions[j];
        if (!c) return;
        if (!p.requiresGrad) {
          if (c !== g) c.dispose();
          return;
        }
        if (c.size !== p.size) throw new Error(`autograd: op ${t.op} gave a gradient ${fmt(c.shape)} for an input of shape ${fmt(p.shape)}`);
        if (c === g || c.buffer === g.buffer) {
          if (gMoved) {
            const copy = c.clone();
            if (c !== g) c.dispose();
            c = copy;
          } else {
            gMoved = true;
            gKept = c === g;
          }
        } else if (stored.has(c)) c = c.clone();
        if (c.shape.length !== p.shape.length || c.shape.some((d, i) => d !== p.shape[i])) {
          const v = c.view(p.shape);
          c.dispose();
          c = v;
        }
        const prev = grads.get(p);
        if (prev) {
          addInPlace(prev, c);
          c.dispose();
        } else {
          grads.set(p, c);
          stored.add(c);
        }
      });
      stored.delete(g);
      if (!gKept) g.dispose(); // a view that moved holds its own reference
      t.releaseGraph();
    }
    for (const g of grads.values()) g.dispose();
  }

  dispose(): void {
    this.releaseGraph();
    this.data.dispose();
    this.grad?.dispose();
    this.grad = null;
  }
}

/** A trainable leaf tensor that outlives scopes (its data and .grad are kept). */
export class Parameter extends Tensor {
  constructor(data: GpuArray, readonly name = '') {
    super(keep(data), { requiresGrad: true });
  }

  override accumulateGrad(g: GpuArray): void {
    super.accumulateGrad(keep(g));
  }

  zeroGrad(): void {
    this.grad?.dispose();
    this.grad = null;
  }

  /** Replace the values (same size), e.g. when loading weights. */
  assign(values: Float32Array): void {
    this.data.write(values);
  }
}
