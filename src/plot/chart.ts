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

/**
 * Fonts for the chart's text: the system's, and the folders in CELLUSCAN_FONT_DIRS (':'-separated; the GPU pack ships
 * one, scripts/pack-node-bundle.sh): a machine with no fonts at all (a bare GPU machine) otherwise renders every label,
 * title and legend blank, with no error from resvg.
 */
function fontOptions(systemFonts = true): { loadSystemFonts: boolean; fontDirs: string[] } {
  const dirs = (process.env.CELLUSCAN_FONT_DIRS ?? '').split(':').filter((d) => d.trim() !== '');
  return { loadSystemFonts: systemFonts, fontDirs: dirs };
}

let fontsChecked = false;
/**
 * Whether text renders at all with fontOptions() (a probe word drawn black on white leaves some non-white pixel);
 * `systemFonts: false` counts CELLUSCAN_FONT_DIRS' fonts alone.
 */
export function textRenders(systemFonts = true): boolean {
  const probe = '<svg xmlns="http://www.w3.org/2000/svg" width="60" height="20"><text x="2" y="15" font-family="sans-serif" font-size="14">Ag</text></svg>';
  const px = new Resvg(probe, { background: 'white', font: fontOptions(systemFonts) }).render().pixels;
  for (let i = 0; i < px.length; i += 4) if (px[i] < 200) return true;
  return false;
}

export async function specToPng(spec: VegaLiteSpec, scale = 2): Promise<Uint8Array> {
  const svg = await specToSvg(spec);
  if (!fontsChecked) {
    fontsChecked = true;
    if (!textRenders()) process.stderr.write('warning: no fonts found: the chart\'s labels will be blank (install a font, e.g. Debian\'s fonts-dejavu-core, or name a folder of .ttf files in CELLUSCAN_FONT_DIRS)\n');
  }
  const png = new Resvg(svg, { fitTo: { mode: 'zoom', value: scale }, background: 'white', font: fontOptions() }).render().asPng();
  return new Uint8Array(png);
}

/** Render and write a PNG atomically (temporary file, then rename). */
export async function writeChartPng(path: string, spec: VegaLiteSpec): Promise<void> {
  const png = await specToPng(spec);
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, png);
  renameSync(tmp, path);
}
