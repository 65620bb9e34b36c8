// ViT commands: predict, convert, attention, and `bench vit`. Registered from main.ts with register(program).
// Everything is checked (files read, images decoded, arguments parsed) before the GPU starts, and files are
// written only when everything succeeded (each atomically), so an error leaves no partial output.
import { Command, Option } from 'commander';
import { mkdir, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { intArg, listArg, matmulVariantList, output, table, UsageError } from './util.js';

const pct = (p: number) => `${(100 * p).toFixed(2)}%`;

/** Image paths from --image values: files as given, folders expanded to their PNG/JPEG files (sorted). */
export async function expandImagePaths(values: string[]): Promise<string[]> {
  const { IMAGE_EXTENSIONS } = await import('../vit/image.js');
  const out: string[] = [];
  for (const v of values) {
    let s;
    try {
      s = await stat(v);
    } catch {
      throw new UsageError(`${v}: no such file or folder`);
    }
    if (s.isDirectory()) {
      const names = (await readdir(v)).filter((n) => IMAGE_EXTENSIONS.includes(extname(n).toLowerCase())).sort();
      if (!names.length) throw new UsageError(`${v}: the folder has no .png/.jpg/.jpeg files`);
      out.push(...names.map((n) => join(v, n)));
    } else out.push(v);
  }
  return out;
}

async function readBytes(path: string, what: string): Promise<Uint8Array> {
  try {
    const b = await readFile(path);
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  } catch (e) {
    const { fsReason } = await import('../vit/weightsFile.node.js'); // (the error path only: not loaded at start-up)
    throw new UsageError(`${path}: cannot read the ${what}: ${fsReason(e)}`);
  }
}

/**
 * The bytes of a --weights file, with predict's errors (unreadable: one line naming the file). Parse them with
 * loadModelFromSafetensors or parseSafetensorsFile(bytes, path), which name the file too and tell a PyTorch
 * checkpoint to be converted first: every command that loads a model (predict, attention, eval, tune) says it alike.
 */
export function readWeightsBytes(path: string): Promise<Uint8Array> {
  return readBytes(path, 'weights file');
}

/** An image `predict` left out: its path and why (the error's message without the leading path). */
export interface SkippedImage {
  image: string;
  reason: string;
}

/**
 * Read, decode and check every image before the model is touched. By default the first image that cannot be read
 * or decoded is the error (one line naming the file). With `skip`, such an image is left out and handed to `skip`
 * instead (other errors still throw): `predict` over a folder or several files goes on with the rest.
 */
async function loadImages(paths: string[], skip?: (s: SkippedImage) => void) {
  const { decodeImage } = await import('../vit/decode.js');
  const { ImageError } = await import('../vit/image.js');
  const out = [];
  for (const p of paths) {
    try {
      out.push({ path: p, rgb: decodeImage(await readBytes(p, 'image'), p) });
    } catch (e) {
      // readBytes: UsageError `${p}: cannot read the image: …`; decodeImage: ImageError `${p}: corrupt PNG (…)` etc.
      if (!skip || !(e instanceof ImageError || e instanceof UsageError)) throw e;
      const msg = (e as Error).message;
      skip({ image: p, reason: msg.startsWith(`${p}: `) ? msg.slice(p.length + 2) : msg });
    }
  }
  return out;
}

async function loadModel(weights: string) {
  const bytes = await readWeightsBytes(weights);
  const { initGpu } = await import('../kernels/device.js');
  await initGpu();
  const { loadModelFromSafetensors } = await import('../vit/predict.js');
  return loadModelFromSafetensors(bytes, weights);
}

async function writeAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}

async function resolveLabels(spec: string | undefined): Promise<{ labels?: string[]; note?: string }> {
  if (spec === undefined) return {};
  const { isLabelPreset, parseLabelsText, presetLabels } = await import('../vit/labels.js');
  let isFile = false;
  try {
    isFile = (await stat(spec)).isFile();
  } catch {
    /* not a file */
  }
  if (isFile) return { labels: parseLabelsText(new TextDecoder().decode(await readBytes(spec, 'labels file')), spec) };
  if (spec === 'generic') return { note: "labels 'generic': none stored; predictions name classes class_0, class_1, …" };
  if (isLabelPreset(spec)) return { labels: presetLabels(spec) };
  throw new UsageError(`--labels: '${spec}' is neither a file nor a label preset (presets: wbc14, generic)`);
}

/** --out of `attention` must be a folder (it is created if missing): a file there is a usage error, found before any work. */
async function checkOutFolder(out: string): Promise<void> {
  let s;
  try {
    s = await stat(out);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOTDIR') throw new UsageError(`attention: cannot create the --out folder ${out}: a file stands in its path`);
    return; // absent: created once the overlays are ready
  }
  if (!s.isDirectory()) throw new UsageError(`attention: --out must be a folder, but ${out} is a file`);
}

/** 'auto' (or nothing): the adapter's choice for the model's shape (the table, or what `celluscan tune` cached). */
function parseAttentionPath(v: string | undefined): 'fused' | 'explicit' | undefined {
  const p = v ?? 'auto';
  if (p === 'auto') return undefined;
  if (p !== 'fused' && p !== 'explicit') throw new UsageError(`--attention must be 'auto', 'fused' or 'explicit', got '${p}'`);
  return p;
}

export function register(program: Command): void {
  program
    .command('predict')
    .description('classify images with a CelluScan safetensors model: top-K classes per image')
    .requiredOption('--weights <file>', 'CelluScan .safetensors (see `celluscan convert`)')
    .requiredOption('--image <paths...>', 'PNG/JPEG files or folders of them (repeatable)')
    .option('--top <k>', 'classes to show per image', intArg('--top'), 5)
    .option('--batch <n>', 'images per forward pass', intArg('--batch'), 8)
    .addOption(new Option('--attention <path>', "attention implementation ('auto': this adapter's choice for the model's shape, see `celluscan tune`)").choices(['auto', 'fused', 'explicit']).default('auto'))
    .option('--json', 'JSON: one object {image, logits, probs, top} per image (an array for several images); skipped images are named on stderr only')
    .addHelpText(
      'after',
      '\nWith a folder or several images, an image that cannot be read or decoded is skipped with a warning on stderr\n' +
        '(the rest are predicted) and the exit status is 1. If none can be, or the only image given cannot be, it is an error.',
    )
    .action(async (o) => {
      const paths = await expandImagePaths(o.image);
      // One image: an unreadable or corrupt file is the error, as it always was. Several (or a folder): skip it, warn.
      const skipped: SkippedImage[] = [];
      const images = await loadImages(
        paths,
        paths.length === 1
          ? undefined
          : (s) => {
              skipped.push(s);
              console.error(`celluscan: warning: skipped ${s.image}: ${s.reason}`);
            },
      );
      if (!images.length) throw new Error(`predict: none of the ${paths.length} images could be read or decoded (each is named above)`);
      const lm = await loadModel(o.weights);
      const { prepareImage } = await import('../vit/image.js');
      const prepared = images.map((im) => prepareImage(im.rgb, { imageSize: lm.config.image_size, mean: lm.mean, std: lm.std, name: im.path }));
      const { predict } = await import('../vit/predict.js');
      const preds = await predict(lm, prepared, { top: o.top, batch: o.batch, attention: parseAttentionPath(o.attention) });
      // The shape follows what was asked for (one image: an object; several or a folder: an array, even when skipping
      // leaves one), and holds predictions only: consumers read {image, logits, probs, top} from every element.
      if (o.json) process.stdout.write(JSON.stringify(paths.length === 1 ? preds[0] : preds) + '\n');
      else {
        const { describeLabel } = await import('../vit/labels.js');
        for (const n of lm.notes) console.error(`note: ${n}`);
        const lines: string[] = [];
        for (const p of preds) {
          lines.push(p.image);
          p.top.forEach((t, i) => {
            const d = describeLabel(t.label);
            lines.push(`  ${i + 1}. ${t.label.padEnd(26)} ${pct(t.prob).padStart(7)}${d && i === 0 ? `   ${d}` : ''}`);
          });
        }
        process.stdout.write(lines.join('\n') + '\n');
      }
      if (skipped.length) {
        console.error(`celluscan: ${skipped.length} of ${paths.length} images skipped (could not be read or decoded)`);
        process.exitCode = 1;
      }
    });

  program
    .command('convert')
    .description('convert a torchvision/timm/Hugging Face ViT state dict (.pth/.pt/.safetensors) to a CelluScan safetensors file')
    .argument('<in>', 'input weights (.pth/.pt zip checkpoint or .safetensors)')
    .argument('<out>', 'output .safetensors')
    .option('--num-heads <n>', 'attention heads (cannot be read from the weights; default from a matching preset or hidden/64)', intArg('--num-heads'))
    .option('--labels <file|preset>', 'class names: a file (one per line, or a JSON array) or a preset (wbc14, generic)')
    .option('--mean <m,m,m>', 'input normalisation mean (RGB)', listArg('--mean', 3))
    .option('--std <s,s,s>', 'input normalisation std (RGB)', listArg('--std', 3))
    .option('--json', 'one JSON object')
    .action(async (input: string, out: string, o) => {
      const lab = await resolveLabels(o.labels);
      const { convertFile } = await import('../vit/convert.js');
      const { WeightsError } = await import('../vit/safetensors.js');
      let r;
      try {
        r = await convertFile(input, out, { numHeads: o.numHeads, labels: lab.labels, mean: o.mean, std: o.std });
      } catch (e) {
        if (e instanceof WeightsError) throw new UsageError(`convert: ${e.message}`);
        throw e;
      }
      const notes = [...r.notes, ...(lab.note ? [lab.note] : [])];
      const res = { input, output: out, layout: r.layout, config: r.config, labels: lab.labels ?? null, mean: o.mean ?? null, std: o.std ?? null, tensors: r.tensorCount, bytes: r.bytes, notes };
      output(o.json, res, () => {
        const c = r.config;
        const rows = Object.entries(c).map(([k, v]) => [k, String(v)]);
        return [
          `converted ${input} (${r.layout} layout) → ${out}: ${r.tensorCount} tensors, ${(r.bytes / 1e6).toFixed(1)} MB`,
          table(rows, ['config', 'value']),
          ...(lab.labels ? [`labels: ${lab.labels.join(', ')}`] : []),
          ...notes.map((n) => `note: ${n}`),
        ].join('\n');
      });
    });

  program
    .command('attention')
    .description("class-token attention maps for every layer and head, attention rollout, overlays; head ablation's effect")
    .requiredOption('--weights <file>', 'CelluScan .safetensors')
    .requiredOption('--image <file>', 'a PNG/JPEG image')
    .requiredOption('--out <dir>', 'folder for the PNG overlays (created if missing)')
    .option('--ablate-heads <L:H,...>', 'mask these (layer, head) pairs (0-based) and report each class\'s probability change')
    .option('--top <k>', 'classes to show', intArg('--top'), 5)
    .option('--probs', 'also write every layer\'s full attention probabilities [heads, tokens, tokens] (row: query, column: key; token 0 the class token) to OUT/attention_probs.safetensors (numpy: safetensors.numpy.load_file)')
    .option('--json', 'one JSON object with the numbers')
    .action(async (o) => {
      const { parseAblateHeads, attentionMaps, overlayRgba, ablationChanges } = await import('../vit/attentionMaps.js');
      const ablate = o.ablateHeads !== undefined ? parseAblateHeads(o.ablateHeads) : undefined;
      await checkOutFolder(o.out);
      const [im] = await loadImages([o.image]);
      const lm = await loadModel(o.weights);
      const { prepareImage } = await import('../vit/image.js');
      const img = prepareImage(im.rgb, { imageSize: lm.config.image_size, mean: lm.mean, std: lm.std, name: o.image });
      if (ablate) for (const [l, h] of ablate) if (l >= lm.config.num_layers || h >= lm.config.num_heads) {
        throw new UsageError(`--ablate-heads: ${l}:${h} is out of range: the model has layers 0..${lm.config.num_layers - 1} and heads 0..${lm.config.num_heads - 1}`);
      }
      const r = await attentionMaps(lm, img);
      const ablated = ablate ? await attentionMaps(lm, img, ablate) : undefined;
      // Encode everything first, then write (each file atomically).
      const pngjs = (await import('pngjs')).default;
      const S = img.size;
      const encode = (rgba: Uint8Array) => {
        const png = new pngjs.PNG({ width: S, height: S });
        png.data = Buffer.from(rgba.buffer, rgba.byteOffset, rgba.byteLength);
        return new Uint8Array(pngjs.PNG.sync.write(png));
      };
      const files: [string, Uint8Array][] = [];
      const plain = new Uint8Array(S * S * 4);
      for (let i = 0; i < S * S; i++) {
        for (let c = 0; c < 3; c++) plain[i * 4 + c] = Math.round(img.rgb[i * 3 + c]);
        plain[i * 4 + 3] = 255;
      }
      files.push(['input.png', encode(plain)]);
      files.push(['rollout.png', encode(overlayRgba(img, r.rollout, r.grid))]);
      r.clsMean.forEach((m, l) => files.push([`layer_${String(l).padStart(2, '0')}_mean.png`, encode(overlayRgba(img, m, r.grid))]));
      r.cls.forEach((heads, l) => heads.forEach((m, h) => files.push([`layer_${String(l).padStart(2, '0')}_head_${String(h).padStart(2, '0')}.png`, encode(overlayRgba(img, m, r.grid))])));
      if (o.probs) {
        const { serializeSafetensors } = await import('../vit/safetensors.js');
        const H = lm.config.num_heads;
        const tensors = new Map<string, { shape: number[]; data: Float32Array }>(r.layerProbs.map((p, l) => [`layer_${String(l).padStart(2, '0')}`, { shape: [H, r.tokens, r.tokens], data: p }]));
        files.push([
          'attention_probs.safetensors',
          serializeSafetensors(tensors, {
            celluscan_attention: 'softmax(q·kᵀ/√d) per layer and head, [heads, tokens, tokens]: row = query, column = key; token 0 is the class token where the model has one, then the patches row by row',
            image: o.image,
            weights: o.weights,
            config: JSON.stringify(lm.config),
          }),
        ]);
      }
      try {
        await mkdir(o.out, { recursive: true });
      } catch (e) {
        throw new UsageError(`attention: cannot create the --out folder ${o.out}: ${(e as NodeJS.ErrnoException).code === 'EEXIST' || (e as NodeJS.ErrnoException).code === 'ENOTDIR' ? 'a file stands in its path' : (e as Error).message}`);
      }
      for (const [name, bytes] of files) await writeAtomic(join(o.out, name), bytes);
      const { topK } = await import('../vit/predict.js');
      const top = topK(r.probs, lm.labels, o.top);
      const changes = ablated ? ablationChanges(r.probs, ablated.probs, lm.labels) : undefined;
      const res = {
        image: o.image,
        grid: r.grid,
        layers: lm.config.num_layers,
        heads: lm.config.num_heads,
        top,
        logits: r.logits,
        probs: r.probs,
        cls_attention: r.cls,
        cls_attention_mean: r.clsMean,
        rollout: r.rollout,
        files: files.map(([n]) => join(o.out, n)),
        ...(ablated ? { ablated_heads: ablate, ablated_probs: ablated.probs, ablated_top: topK(ablated.probs, lm.labels, o.top), changes } : {}),
      };
      output(o.json, res, () => {
        const lines = [`${basename(o.image)}: ${top.map((t) => `${t.label} ${pct(t.prob)}`).join(', ')}`];
        const peak = (m: number[]) => {
          const j = m.indexOf(Math.max(...m));
          return `(${Math.floor(j / r.grid)}, ${j % r.grid})`;
        };
        lines.push(table(r.clsMean.map((m, l) => [l, peak(m), Math.max(...m).toFixed(4)]), ['layer', 'peak patch (row, col)', 'class-token attention there (head mean)']));
        lines.push(`rollout peak patch ${peak(r.rollout)}; ${files.length} overlays written to ${o.out}`);
        if (changes) {
          lines.push(`ablated heads ${ablate!.map(([l, h]) => `${l}:${h}`).join(', ')}: probability change per class`);
          lines.push(table(changes.map((c) => [c.label, pct(c.before), pct(c.after), `${c.change >= 0 ? '+' : ''}${(100 * c.change).toFixed(2)} pts`]), ['class', 'before', 'after', 'change']));
        }
        return lines.join('\n');
      });
    });

  const bench = program.commands.find((c) => c.name() === 'bench');
  if (bench) {
    bench
      .command('vit')
      .description('ViT forward pass time per image (random weights; default vit_b_16 with 14 classes)')
      .option('--batch <b>', 'images per forward', intArg('--batch'), 1)
      .option('--config <name>', 'a ViT preset (vit_b_16, vit_s_16, vit_ti_16, …)', 'vit_b_16')
      .option('--runs <n>', 'timed runs (the best is reported; default 3)', intArg('--runs'))
      .addOption(new Option('--attention <path>', "attention implementation ('auto': this adapter's choice for the model's shape, see `celluscan tune`)").choices(['auto', 'fused', 'explicit']).default('auto'))
      .option('--peers', 'also time torchvision on the CPU (needs python3 with torch)')
      .option('--matmul <names>', "comma-separated matmul choices timed side by side in alternating rounds, logits checked against the first's: a variant (run for every product) or 'library' (the library's own choice per transpose form), e.g. library,blocked-vec4")
      .option('--json', 'one JSON object')
      .action(async (o, cmd: Command) => {
        // `bench` itself defines --runs and --json, so commander may hand them to the parent: read both.
        const parent = cmd.parent?.opts() ?? {};
        const json = !!(o.json || parent.json);
        const runs = o.runs ?? parent.runs ?? 3;
        const { benchVit, LIBRARY_MATMUL } = await import('../../bench/vit.js');
        const matmul = o.matmul === undefined ? undefined : await matmulVariantList('bench vit', '--matmul', o.matmul, [LIBRARY_MATMUL], ` (or '${LIBRARY_MATMUL}': the library's own choice)`);
        const r = await benchVit({ batch: o.batch, config: o.config, runs, attention: parseAttentionPath(o.attention), peers: !!o.peers, matmul });
        output(json, r, () => {
          const { matmul_rows: rows, ...rest } = r;
          const fields = table(Object.entries(rest).map(([k, v]) => [k, typeof v === 'object' ? JSON.stringify(v) : String(v)]), ['field', 'value']);
          if (!rows) return fields;
          const ref = rows.find((x) => !x.failed)!.matmul;
          const per = table(
            rows.map((x) =>
              x.failed
                ? [x.matmul, x.describes, `✗ ${x.failed}`, '', '']
                : [x.matmul, x.describes, (x.seconds_per_image * 1000).toPrecision(4), x.vs_first.toFixed(3), x.logits_max_diff.toExponential(1)],
            ),
            ['matmul', 'runs as', 'ms/image (best)', `speed-up vs ${ref} (> 1: faster)`, `logits max |Δ| from ${ref}'s`],
          );
          return `${fields}\n\n${r.batch} image(s) per forward, ${runs} alternating rounds:\n${per}`;
        });
        const bad = r.matmul_rows?.filter((x) => x.failed) ?? [];
        if (bad.length) throw new Error(`bench vit: ${bad.length} matmul choice(s) failed (marked ✗)`);
      });
  }
}
