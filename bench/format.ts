// Numbers in the benchmarks' tables: whole numbers from 100, d decimals from 1, three significant digits below 1 (a
// GPU's 0.0123 s per image, or a slow kernel's 0.0253 GFLOP/s, must not print as 0.00).
export const fmtNum = (v: number | undefined, d = 2) =>
  v === undefined || !Number.isFinite(v) ? '' : Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 || v === 0 ? v.toFixed(d) : v.toPrecision(3);
