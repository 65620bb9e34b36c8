// Charts as PNG: a Vega-Lite spec compiled by vega-lite, rendered to SVG by vega (headless, no
// canvas), rasterised by resvg. Node only (the browser shows SVG directly).
import * as vl from 'vega-lite';
import * as vega from 'vega';
import { Resvg } from '@resvg/resvg-js';
import { renameSync, writeFileSync } from 'node:fs';

export type VegaLiteSpec = vl.TopLevelSpec;

export async function specToSvg(spec: VegaLiteSpec): Promise<string> {
  const compiled = vl.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

export async function specToPng(spec: VegaLiteSpec, scale = 2): Promise<Uint8Array> {
  const svg = await specToSvg(spec);
  const png = new Resvg(svg, { fitTo: { mode: 'zoom', value: scale }, background: 'white', font: { loadSystemFonts: true } }).render().asPng();
  return new Uint8Array(png);
}

/** Render and write a PNG atomically (temporary file, then rename). */
export async function writeChartPng(path: string, spec: VegaLiteSpec): Promise<void> {
  const png = await specToPng(spec);
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, png);
  renameSync(tmp, path);
}
