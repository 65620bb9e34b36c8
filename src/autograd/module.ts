// Module: a container of Parameters and sub-modules, found by walking its own fields, with
// torch-style dotted names (so state_dict names line up with PyTorch's).
import { GpuArray, type HoldsGpuArrays } from '../kernels/memory.js';
import { Parameter } from './tensor.js';

export abstract class Module implements HoldsGpuArrays {
  training = true;

  /** Parameters with dotted names, in field order (arrays of modules are numbered: layers.0.…). */
  *namedParameters(prefix = ''): Iterable<[string, Parameter]> {
    for (const [key, value] of Object.entries(this)) {
      yield* walk(value, prefix ? `${prefix}.${key}` : key);
    }
  }

  parameters(): Parameter[] {
    return [...this.namedParameters()].map(([, p]) => p);
  }

  /** Sub-modules, this one first. */
  *modules(): Iterable<Module> {
    yield this;
    for (const value of Object.values(this)) {
      if (value instanceof Module) yield* value.modules();
      else if (Array.isArray(value)) for (const v of value) if (v instanceof Module) yield* v.modules();
    }
  }

  train(on = true): this {
    for (const m of this.modules()) m.training = on;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  zeroGrad(): void {
    for (const p of this.parameters()) p.zeroGrad();
  }

  *gpuArrays(): Iterable<GpuArray> {
    for (const p of this.parameters()) yield* p.gpuArrays();
  }

  numParameters(): number {
    return this.parameters().reduce((n, p) => n + p.size, 0);
  }

  dispose(): void {
    for (const p of this.parameters()) p.dispose();
  }
}

function* walk(value: unknown, name: string): Iterable<[string, Parameter]> {
  if (value instanceof Parameter) yield [name, value];
  else if (value instanceof Module) yield* value.namedParameters(name);
  else if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) yield* walk(value[i], `${name}.${i}`);
  }
}
