// The CelluScan page: the library's own modules (src/), bundled by Vite, on the browser's WebGPU.
// Weights: a .safetensors file (picker or ?weights=URL). Image: drop / picker / ?image=URL / a synthetic sample.
// Shows the top-5 classes (with the wbc14 descriptions), the attention rollout or one layer's/head's class-token
// attention over the image, and how the probabilities move when chosen heads are ablated.
//
// For tests and scripts the page publishes its state on `window.celluscan` (see PageState) and mirrors the
// status in <body data-status>. Other URL parameters: ?labels=wbc14, ?ablate=L:H,L:H (0-based).
import { initGpu, type Gpu } from '../src/kernels/device.js';
import { ablationChanges, attentionMaps, overlayRgba, parseAblateHeads, type AttentionResult } from '../src/vit/attentionMaps.js';
import { vitPreset } from '../src/vit/config.js';
import { IMAGENET_MEAN, IMAGENET_STD, prepareImage, rgbFromRgba, type PreparedImage, type RgbImage } from '../src/vit/image.js';
import { describeLabel, genericLabels, presetLabels } from '../src/vit/labels.js';
import { VisionTransformer } from '../src/vit/model.js';
import { loadModelFromSafetensors, logitsFor, softmax, topK, type LoadedModel } from '../src/vit/predict.js';
import type { VitConfig } from '../src/vit/config.js';
import { drawSyntheticCell } from './synthetic.js';
import { setupTraining } from './train.js';

type Status = 'starting' | 'no-adapter' | 'idle' | 'loading' | 'running' | 'ready' | 'error';

/** What the page exposes on window.celluscan. */
export interface PageState {
  status: Status;
  /** Completed analyses (each image/model/ablation change is one). */
  run: number;
  adapter?: { vendor: string; architecture: string; description: string; key: string; features: string[] };
  error?: string;
  /** WebGPU validation/out-of-memory errors seen (uncapturederror). */
  gpuErrors: string[];
  config?: VitConfig;
  labels?: string[];
  /** Logits of the current image with the current ablation, fused attention path. */
  logits?: number[];
  /** The same without ablation. */
  baseLogits?: number[];
  /** Logits of the explicit attention path (the one that returns the attention maps), current ablation. */
  attentionLogits?: number[];
  probs?: number[];
  ablate: [number, number][];
  top?: { label: string; index: number; prob: number }[];
  /** Milliseconds of the last analysis. */
  ms?: number;
}

const state: PageState = { status: 'starting', run: 0, gpuErrors: [], ablate: [] };
(window as unknown as { celluscan: PageState }).celluscan = state;

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const els = {
  adapter: $('adapter'),
  error: $('error'),
  weightsFile: $<HTMLInputElement>('weights-file'),
  randomModel: $<HTMLButtonElement>('random-model'),
  labels: $<HTMLSelectElement>('labels'),
  modelInfo: $('model-info'),
  drop: $('drop'),
  imageFile: $<HTMLInputElement>('image-file'),
  sample: $<HTMLButtonElement>('sample-image'),
  notes: $('notes'),
  results: $('results'),
  overlay: $<HTMLCanvasElement>('overlay'),
  layer: $<HTMLSelectElement>('layer'),
  head: $<HTMLSelectElement>('head'),
  alpha: $<HTMLInputElement>('alpha'),
  caption: $('map-caption'),
  top5: $('top5'),
  timing: $('timing'),
  heads: $('heads'),
  clear: $<HTMLButtonElement>('clear-ablation'),
  changes: $<HTMLTableElement>('changes'),
};

function setStatus(s: Status): void {
  state.status = s;
  document.body.dataset.status = s;
}

function showError(e: unknown): void {
  const msg = e instanceof Error ? e.message : String(e);
  state.error = msg;
  els.error.textContent = msg;
  els.error.hidden = false;
  setStatus('error');
  console.error(e);
}

function clearError(): void {
  state.error = undefined;
  els.error.hidden = true;
}

// ---- the current model and image ---------------------------------------------------------------

let gpuInfo: Gpu | undefined;
let lm: LoadedModel | undefined;
let fileLabels: string[] = [];
let image: { name: string; rgb: RgbImage } | undefined;
let prepared: PreparedImage | undefined;
let baseLogits: Float32Array | undefined;
let lastMaps: AttentionResult | undefined;
const ablated = new Set<string>(); // "layer:head"

/** GPU work one job at a time, in order; errors go to the page. */
let queue: Promise<void> = Promise.resolve();
function enqueue(job: () => Promise<void>): Promise<void> {
  queue = queue.then(job).catch(showError);
  return queue;
}

async function start(): Promise<void> {
  try {
    gpuInfo = await initGpu();
  } catch (e) {
    // NoAdapterError's message says what to do (browser flags, drivers).
    els.adapter.textContent = 'no WebGPU adapter';
    showError(e);
    setStatus('no-adapter');
    for (const b of document.querySelectorAll<HTMLInputElement | HTMLButtonElement>('input, button, select')) b.disabled = true;
    return;
  }
  const i = gpuInfo.info;
  state.adapter = { vendor: i.vendor, architecture: i.architecture, description: i.description, key: gpuInfo.adapterKey, features: [...gpuInfo.features] };
  els.adapter.textContent = `WebGPU: ${[i.vendor, i.architecture, i.description].filter(Boolean).join(' · ') || gpuInfo.adapterKey}${i.isFallbackAdapter ? ' (software fallback)' : ''}`;
  gpuInfo.device.addEventListener('uncapturederror', (ev) => {
    const msg = (ev as GPUUncapturedErrorEvent).error.message;
    state.gpuErrors.push(msg);
    showError(`WebGPU error: ${msg}`);
  });
  setStatus('idle');

  const params = new URLSearchParams(location.search);
  // A wrong parameter stops here with a message that names it (nothing is loaded for a URL that is not what was meant).
  const labelsParam = params.get('labels');
  if (labelsParam !== null) {
    const choices = [...els.labels.options].map((o) => o.value);
    if (!choices.includes(labelsParam)) return showError(`URL parameter labels=${labelsParam}: choose one of ${choices.join(', ')}`);
    els.labels.value = labelsParam;
  }
  const ablate = params.get('ablate');
  if (ablate !== null) {
    try {
      for (const [l, h] of parseAblateHeads(ablate, `URL parameter ablate=${ablate}`)) ablated.add(`${l}:${h}`);
    } catch (e) {
      return showError(e);
    }
  }
  const w = params.get('weights');
  const im = params.get('image');
  if (w) await enqueue(() => loadWeightsUrl(w));
  if (im) await enqueue(() => loadImageUrl(im));
}

// ---- weights -------------------------------------------------------------------------------------

function setModel(next: LoadedModel, what: string): void {
  lm?.model.dispose();
  lm = next;
  fileLabels = next.labels;
  baseLogits = undefined;
  prepared = undefined;
  lastMaps = undefined;
  const dropped: string[] = [];
  for (const k of [...ablated]) {
    const [l, h] = k.split(':').map(Number);
    if (l >= next.config.num_layers || h >= next.config.num_heads) {
      ablated.delete(k);
      dropped.push(k);
    }
  }
  const c = next.config;
  const nParams = next.model.numParameters();
  els.modelInfo.textContent =
    `${what}: ViT image ${c.image_size}, patch ${c.patch_size}, ${c.num_layers} layers, ${c.num_heads} heads, hidden ${c.hidden_dim}, ` +
    `mlp ${c.mlp_dim}, ${c.num_classes} classes — ${(nParams / 1e6).toFixed(nParams < 1e6 ? 3 : 1)} M parameters`;
  // (an ablation asked for in the URL or for the previous model that this one has no head for is said, not lost quietly)
  const droppedNote = dropped.length ? [`not ablated: ${dropped.join(', ')} (this model has ${next.config.num_layers} layers of ${next.config.num_heads} heads, counted from 0)`] : [];
  els.notes.textContent = [...next.notes, ...droppedNote].join(' · ');
  const wbcOption = els.labels.querySelector<HTMLOptionElement>('option[value="wbc14"]')!;
  wbcOption.disabled = c.num_classes !== 14;
  if (els.labels.value === 'wbc14' && c.num_classes !== 14) els.labels.value = 'file';
  state.config = c;
  buildHeadControls();
}

function currentLabels(): string[] {
  if (!lm) return [];
  if (els.labels.value === 'wbc14' && lm.config.num_classes === 14) return presetLabels('wbc14');
  return fileLabels.length === lm.config.num_classes ? fileLabels : genericLabels(lm.config.num_classes);
}

async function loadWeightsBytes(bytes: Uint8Array, name: string): Promise<void> {
  clearError();
  setStatus('loading');
  setModel(loadModelFromSafetensors(bytes, name), name);
  await analyse();
}

/**
 * fetch(url) for `what` ('weights', 'image'), with errors that name the URL: a network failure (the browser says only
 * "Failed to fetch"), an HTTP error, or an HTML page where a file was expected (a development server answers a wrong
 * path with its index page and status 200, which would otherwise read as a damaged file).
 */
async function fetchFile(url: string, what: string): Promise<Response> {
  let r: Response;
  try {
    r = await fetch(url);
  } catch (e) {
    throw new Error(`${what}: ${url}: could not be fetched (${(e as Error).message}; is the address right and the server reachable, and does it allow this page to read it (CORS)?)`);
  }
  if (!r.ok) throw new Error(`${what}: ${url}: HTTP ${r.status} ${r.statusText}`);
  if ((r.headers.get('content-type') ?? '').startsWith('text/html')) throw new Error(`${what}: ${url}: the server sent an HTML page, not a ${what === 'weights' ? '.safetensors file' : 'PNG or JPEG image'} (a wrong path?)`);
  return r;
}

async function loadWeightsUrl(url: string): Promise<void> {
  setStatus('loading');
  els.modelInfo.textContent = `loading ${url}…`;
  const r = await fetchFile(url, 'weights');
  await loadWeightsBytes(new Uint8Array(await r.arrayBuffer()), url.split('/').pop() || url);
}

function randomTinyModel(): LoadedModel {
  const config = vitPreset('vit_b_16', { image_size: 64, patch_size: 8, num_layers: 4, num_heads: 4, hidden_dim: 64, mlp_dim: 128, num_classes: 14 });
  const seed = Math.floor(Math.random() * 1e6);
  const model = new VisionTransformer(config, { init: 'random', seed });
  model.eval();
  return {
    model,
    config,
    labels: presetLabels('wbc14'),
    mean: [...IMAGENET_MEAN],
    std: [...IMAGENET_STD],
    notes: [`random weights (seed ${seed}): untrained, the classes mean nothing — for trying the page`],
  };
}

// ---- images --------------------------------------------------------------------------------------

/** Decode with the browser (no colour-space conversion, alpha dropped): 8-bit RGB as src/vit/image.ts wants. */
async function decodeInBrowser(blob: Blob): Promise<RgbImage> {
  const bmp = await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  const c = document.createElement('canvas');
  c.width = bmp.width;
  c.height = bmp.height;
  const ctx = c.getContext('2d', { willReadFrequently: true })!;
  ctx.drawImage(bmp, 0, 0);
  bmp.close();
  return rgbFromRgba(ctx.getImageData(0, 0, c.width, c.height).data, c.width, c.height);
}

async function setImage(rgb: RgbImage, name: string): Promise<void> {
  clearError();
  image = { name, rgb };
  prepared = undefined;
  baseLogits = undefined;
  await analyse();
}

async function loadImageBlob(blob: Blob, name: string): Promise<void> {
  let rgb: RgbImage;
  try {
    rgb = await decodeInBrowser(blob);
  } catch (e) {
    throw new Error(`${name}: the browser could not decode this image (${(e as Error).message})`);
  }
  await setImage(rgb, name);
}

async function loadImageUrl(url: string): Promise<void> {
  const r = await fetchFile(url, 'image');
  await loadImageBlob(await r.blob(), url.split('/').pop() || url);
}

// ---- analysis ------------------------------------------------------------------------------------

const ablateList = (): [number, number][] =>
  [...ablated].map((k) => k.split(':').map(Number) as [number, number]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);

async function analyse(): Promise<void> {
  if (!lm || !image) {
    setStatus('idle');
    return;
  }
  setStatus('running');
  const t0 = performance.now();
  const c = lm.config;
  prepared ??= prepareImage(image.rgb, { imageSize: c.image_size, mean: lm.mean, std: lm.std, name: image.name });
  baseLogits ??= (await logitsFor(lm, [prepared]))[0];
  const ablate = ablateList();
  const logits = ablate.length ? (await logitsFor(lm, [prepared], { ablate }))[0] : baseLogits;
  const t1 = performance.now();
  lastMaps = await attentionMaps(lm, prepared, ablate.length ? ablate : undefined);
  const t2 = performance.now();

  const labels = currentLabels();
  const probs = softmax(logits);
  const top = topK(probs, labels, 5);
  Object.assign(state, {
    labels,
    logits: Array.from(logits),
    baseLogits: Array.from(baseLogits),
    attentionLogits: lastMaps.logits,
    probs,
    ablate,
    top,
    ms: t2 - t0,
  });
  els.results.hidden = false;
  renderTop(probs, labels);
  renderChanges(softmax(baseLogits), probs, labels, ablate.length > 0);
  renderMap();
  els.timing.textContent = `forward ${(t1 - t0).toFixed(0)} ms, attention maps (explicit path) ${(t2 - t1).toFixed(0)} ms on ${gpuInfo?.adapterKey}`;
  state.run++;
  document.body.dataset.run = String(state.run);
  setStatus(state.gpuErrors.length ? 'error' : 'ready');
}

const pct = (p: number) => `${(100 * p).toFixed(p >= 0.995 || p < 0.0005 ? 1 : 2)}%`;

function renderTop(probs: number[], labels: string[]): void {
  els.top5.replaceChildren();
  for (const t of topK(probs, labels, 5)) {
    const li = document.createElement('li');
    const line = document.createElement('div');
    line.className = 'bar-line';
    const name = document.createElement('span');
    name.className = 'label';
    name.textContent = t.label;
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.style.width = `${Math.max(2, Math.round(t.prob * 160))}px`;
    const p = document.createElement('span');
    p.className = 'prob';
    p.textContent = pct(t.prob);
    line.append(name, bar, p);
    li.append(line);
    const d = describeLabel(t.label);
    if (d) {
      const desc = document.createElement('div');
      desc.className = 'desc';
      desc.textContent = d;
      li.append(desc);
    }
    els.top5.append(li);
  }
}

function renderChanges(before: number[], after: number[], labels: string[], any: boolean): void {
  els.changes.replaceChildren();
  if (!any) {
    const r = els.changes.insertRow();
    r.insertCell().textContent = 'No head ablated.';
    return;
  }
  const head = els.changes.createTHead().insertRow();
  for (const h of ['class', 'before', 'after', 'change']) {
    const th = document.createElement('th');
    th.textContent = h;
    head.append(th);
  }
  const body = els.changes.createTBody();
  for (const ch of ablationChanges(before, after, labels).slice(0, 6)) {
    const r = body.insertRow();
    r.insertCell().textContent = ch.label;
    r.insertCell().textContent = pct(ch.before);
    r.insertCell().textContent = pct(ch.after);
    const d = r.insertCell();
    d.textContent = `${ch.change >= 0 ? '+' : '−'}${(100 * Math.abs(ch.change)).toFixed(2)} pp`;
    d.className = ch.change > 0 ? 'up' : ch.change < 0 ? 'down' : '';
  }
}

function buildHeadControls(): void {
  if (!lm) return;
  const { num_layers: L, num_heads: H } = lm.config;
  // Map pickers.
  const prevLayer = els.layer.value;
  els.layer.replaceChildren(new Option('rollout (all layers)', 'rollout'));
  for (let l = 0; l < L; l++) els.layer.append(new Option(`layer ${l}`, String(l)));
  els.layer.value = [...els.layer.options].some((o) => o.value === prevLayer) ? prevLayer : 'rollout';
  els.head.replaceChildren(new Option('mean of heads', 'mean'));
  for (let h = 0; h < H; h++) els.head.append(new Option(`head ${h}`, String(h)));
  els.head.disabled = els.layer.value === 'rollout';
  // Ablation grid: one row per layer.
  els.heads.replaceChildren();
  els.heads.style.gridTemplateColumns = `auto repeat(${H}, auto)`;
  els.heads.append(document.createElement('span'));
  for (let h = 0; h < H; h++) {
    const s = document.createElement('span');
    s.className = 'lay';
    s.textContent = `H${h}`;
    els.heads.append(s);
  }
  for (let l = 0; l < L; l++) {
    const s = document.createElement('span');
    s.className = 'lay';
    s.textContent = `L${l}`;
    els.heads.append(s);
    for (let h = 0; h < H; h++) {
      const cb = document.createElement('input');
      cb.type = 'checkbox';
      cb.id = `ablate-${l}-${h}`;
      cb.title = `ablate layer ${l}, head ${h}`;
      cb.checked = ablated.has(`${l}:${h}`);
      cb.addEventListener('change', () => {
        if (cb.checked) ablated.add(`${l}:${h}`);
        else ablated.delete(`${l}:${h}`);
        void enqueue(analyse);
      });
      els.heads.append(cb);
    }
  }
}

function renderMap(): void {
  if (!lastMaps || !prepared) return;
  const m = lastMaps;
  const layer = els.layer.value;
  els.head.disabled = layer === 'rollout';
  let map: number[];
  if (layer === 'rollout') {
    map = m.rollout;
    els.caption.textContent = `Attention rollout over ${m.cls.length} layers (Abnar & Zuidema 2020): how much each ${m.grid}×${m.grid} patch feeds the class token.`;
  } else {
    const l = Number(layer);
    const h = els.head.value;
    map = h === 'mean' ? m.clsMean[l] : m.cls[l][Number(h)];
    els.caption.textContent = `Layer ${l}, ${h === 'mean' ? 'mean of the heads' : `head ${h}`}: the class token's attention over the patches.`;
  }
  const S = prepared.size;
  els.overlay.width = S;
  els.overlay.height = S;
  const rgba = overlayRgba(prepared, map, m.grid, Number(els.alpha.value));
  els.overlay.getContext('2d')!.putImageData(new ImageData(new Uint8ClampedArray(rgba), S, S), 0, 0);
}

// ---- events ----------------------------------------------------------------------------------------

els.weightsFile.addEventListener('change', () => {
  const f = els.weightsFile.files?.[0];
  if (f) void enqueue(async () => loadWeightsBytes(new Uint8Array(await f.arrayBuffer()), f.name));
});
els.randomModel.addEventListener('click', () =>
  void enqueue(async () => {
    clearError();
    setModel(randomTinyModel(), 'random tiny model');
    await analyse();
  }),
);
els.labels.addEventListener('change', () => void enqueue(analyse));
els.imageFile.addEventListener('change', () => {
  const f = els.imageFile.files?.[0];
  if (f) void enqueue(() => loadImageBlob(f, f.name));
});
els.sample.addEventListener('click', () => void enqueue(() => setImage(drawSyntheticCell(96, Math.floor(Math.random() * 4), Math.random() * 1e6), 'synthetic sample')));
for (const ev of ['dragenter', 'dragover'] as const) {
  els.drop.addEventListener(ev, (e) => {
    e.preventDefault();
    els.drop.classList.add('over');
  });
}
for (const ev of ['dragleave', 'drop'] as const) els.drop.addEventListener(ev, () => els.drop.classList.remove('over'));
els.drop.addEventListener('drop', (e) => {
  e.preventDefault();
  const f = e.dataTransfer?.files?.[0];
  if (f) void enqueue(() => loadImageBlob(f, f.name));
});
els.layer.addEventListener('change', renderMap);
els.head.addEventListener('change', renderMap);
els.alpha.addEventListener('input', renderMap);
els.clear.addEventListener('click', () => {
  ablated.clear();
  for (const cb of els.heads.querySelectorAll<HTMLInputElement>('input[type=checkbox]')) cb.checked = false;
  void enqueue(analyse);
});

void start().then(() =>
  setupTraining({
    enqueue,
    ready: () => !!gpuInfo,
    useModel: (next, what) =>
      enqueue(async () => {
        clearError();
        setModel(next, what);
        image ??= { name: 'synthetic sample', rgb: drawSyntheticCell(96, 1, 42) };
        await analyse();
      }),
  }),
);
