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
