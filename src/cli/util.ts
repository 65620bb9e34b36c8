// Shared CLI plumbing: one-line errors for people, JSON output on request, number parsing.
import { InvalidArgumentError } from 'commander';

export class UsageError extends Error {
  override name = 'UsageError';
}

export function intArg(name: string, min = 1) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}, got '${v}'`);
    return n;
  };
}

/** A comma-separated list of integers >= min (e.g. --seq 197,577), in the order given, repeats dropped. */
export function intListArg(name: string, min = 1) {
  return (v: string): number[] => {
    const xs = v.split(',').map((s) => s.trim());
    const ns = xs.map(Number);
    if (!xs.length || xs.some((s, i) => s === '' || !Number.isInteger(ns[i]) || ns[i] < min)) {
      throw new InvalidArgumentError(`${name} must be one or more comma-separated integers >= ${min}, got '${v}'`);
    }
    return [...new Set(ns)];
  };
}

export function floatArg(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number, got '${v}'`);
    return n;
  };
}

export function listArg(name: string, count?: number) {
  return (v: string): number[] => {
    const xs = v.split(',').map((s) => Number(s.trim()));
    if (xs.some((x) => !Number.isFinite(x)) || (count !== undefined && xs.length !== count)) {
      throw new InvalidArgumentError(`${name} must be ${count ?? 'a list of'} comma-separated numbers, got '${v}'`);
    }
    return xs;
  };
}

/** A comma-separated option value as its non-empty items; none is a usage error naming the command and the flag. */
export function nameList(op: string, flag: string, value: unknown): string[] {
  const xs = String(value).split(',').map((x) => x.trim()).filter(Boolean);
  if (!xs.length) throw new UsageError(`${op}: ${flag} names nothing`);
  return xs;
}

/**
 * A comma-separated list of matmul variants, each parsed (a bad name is a usage error naming the command, the flag and
 * the parser's reason); names in `also` (e.g. 'library') pass as they are, and `hint` follows the reason.
 */
export async function matmulVariantList(op: string, flag: string, value: unknown, also: readonly string[] = [], hint = ''): Promise<string[]> {
  const { parseMatmulVariant } = await import('../kernels/matmul.js');
  const xs = nameList(op, flag, value);
  for (const v of xs) {
    if (also.includes(v)) continue;
    try {
      parseMatmulVariant(v);
    } catch (e) {
      throw new UsageError(`${op}: ${flag}: ${(e as Error).message}${hint}`);
    }
  }
  return xs;
}

/** Print a result: one JSON object with --json, else the human-readable text. */
export function output(json: boolean, obj: unknown, text: () => string): void {
  if (json) process.stdout.write(JSON.stringify(obj) + '\n');
  else process.stdout.write(text() + '\n');
}

export function table(rows: (string | number)[][], header: string[]): string {
  const all = [header, ...rows.map((r) => r.map(String))];
  const w = header.map((_, i) => Math.max(...all.map((r) => String(r[i]).length)));
  return all.map((r, j) => r.map((c, i) => String(c).padEnd(w[i])).join('  ') + (j === 0 ? '\n' + w.map((n) => '-'.repeat(n)).join('  ') : '')).join('\n');
}
