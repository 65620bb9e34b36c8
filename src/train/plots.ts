// Training plots as Vega-Lite specs, rendered to PNG by src/plot/chart.ts: the loss curves (train loss per step,
// eval loss per evaluation placed at the step it was taken) and the confusion matrix (counts and row-normalised,
// side by side). The spec builders are pure; writeTrainingPlots() renders and writes.
import type { VegaLiteSpec } from '../plot/chart.js';
import { rowNormalise } from './metrics.js';

export interface StepPoint {
  step: number;
  loss: number;
}

export interface EvalPoint {
  step: number;
  epoch: number;
  loss: number;
  split: string;
  accuracy?: number;
}

/** Train loss per step (a faint line plus a moving average when there are many steps) and eval loss points. */
export function lossCurvesSpec(train: StepPoint[], evals: EvalPoint[], title = 'Loss'): VegaLiteSpec {
  const window = Math.max(1, Math.floor(train.length / 50));
  const rows: Record<string, unknown>[] = train.filter((p) => Number.isFinite(p.loss)).map((p) => ({ step: p.step, loss: p.loss, series: 'train (per step)' }));
  if (window > 1) {
    let s = 0;
    const q: number[] = [];
    for (const p of train) {
      if (!Number.isFinite(p.loss)) continue;
      q.push(p.loss);
      s += p.loss;
      if (q.length > window) s -= q.shift()!;
      rows.push({ step: p.step, loss: s / q.length, series: `train (mean of ${window})` });
    }
  }
  for (const e of evals) if (Number.isFinite(e.loss)) rows.push({ step: e.step, loss: e.loss, series: `${e.split} (per epoch)` });
  const series = [...new Set(rows.map((r) => r.series as string))];
  const colours = series.map((s) => (s.startsWith('train (per') ? (window > 1 ? '#9ecae9' : '#1f77b4') : s.startsWith('train') ? '#1f77b4' : '#d62728'));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: 560,
    height: 320,
    data: { values: rows },
    layer: [
      {
        mark: { type: 'line', strokeWidth: 1.5 },
        transform: [{ filter: "indexof(datum.series, 'train') === 0" }],
        encoding: {
          x: { field: 'step', type: 'quantitative', title: 'step' },
          y: { field: 'loss', type: 'quantitative', title: 'cross-entropy loss', scale: { zero: false } },
          color: { field: 'series', type: 'nominal', scale: { domain: series, range: colours }, title: null },
        },
      },
      {
        mark: { type: 'line', point: { size: 60, filled: true }, strokeWidth: 2 },
        transform: [{ filter: "indexof(datum.series, 'train') !== 0" }],
        encoding: {
          x: { field: 'step', type: 'quantitative' },
          y: { field: 'loss', type: 'quantitative' },
          color: { field: 'series', type: 'nominal', scale: { domain: series, range: colours }, title: null },
        },
      },
    ],
  } as VegaLiteSpec;
}

/** Two heatmaps: counts and row-normalised (recall per true class), with the values written in the cells. */
export function confusionSpec(confusion: number[][], labels: readonly string[], title = 'Confusion matrix'): VegaLiteSpec {
  const norm = rowNormalise(confusion);
  const values: Record<string, unknown>[] = [];
  confusion.forEach((row, t) =>
    row.forEach((v, p) => values.push({ truth: labels[t], predicted: labels[p], count: v, fraction: norm[t][p] })),
  );
  const C = labels.length;
  const cell = Math.max(18, Math.min(48, Math.floor(480 / Math.max(1, C))));
  const fontSize = Math.max(7, Math.min(12, cell / 3.2));
  const panel = (field: 'count' | 'fraction', subtitle: string, scheme: string, fmt: string) => ({
    title: subtitle,
    width: cell * C,
    height: cell * C,
    encoding: {
      x: { field: 'predicted', type: 'nominal', sort: [...labels], title: 'predicted', axis: { labelAngle: -45 } },
      y: { field: 'truth', type: 'nominal', sort: [...labels], title: 'true class' },
    },
    layer: [
      {
        mark: 'rect',
        encoding: { color: { field, type: 'quantitative', scale: { scheme, ...(field === 'fraction' ? { domain: [0, 1] } : {}) }, legend: null } },
      },
      {
        mark: { type: 'text', fontSize },
        encoding: {
          text: { field, type: 'quantitative', format: fmt },
          color: { condition: { test: field === 'fraction' ? 'datum.fraction > 0.5' : `datum.count > ${maxOf(confusion) / 2}`, value: 'white' }, value: 'black' },
        },
      },
    ],
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    data: { values },
    hconcat: [panel('count', 'counts', 'blues', 'd'), panel('fraction', 'row-normalised (recall)', 'greens', '.2f')],
    resolve: { scale: { color: 'independent' } },
  } as VegaLiteSpec;
}

function maxOf(m: number[][]): number {
  let x = 0;
  for (const r of m) for (const v of r) x = Math.max(x, v);
  return x;
}

/** Render both plots into a run folder (atomically); returns the files written. */
export async function writeTrainingPlots(
  dir: string,
  data: { train: StepPoint[]; evals: EvalPoint[]; confusion?: { matrix: number[][]; labels: readonly string[]; title: string } },
): Promise<string[]> {
  const { writeChartPng } = await import('../plot/chart.js');
  const { join } = await import('node:path');
  const files: string[] = [];
  const loss = join(dir, 'loss_curves.png');
  await writeChartPng(loss, lossCurvesSpec(data.train, data.evals));
  files.push(loss);
  if (data.confusion) {
    const cm = join(dir, 'confusion_matrix.png');
    await writeChartPng(cm, confusionSpec(data.confusion.matrix, data.confusion.labels, data.confusion.title));
    files.push(cm);
  }
  return files;
}
