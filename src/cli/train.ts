// `celluscan train` and `celluscan eval`. Registered from main.ts with register(program).
import { Command, Option } from 'commander';
import { readFile } from 'node:fs/promises';
import { floatArg, intArg, listArg, output, UsageError } from './util.js';

/** The options given on the command line (not commander's defaults). */
function explicit(cmd: Command, o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(o)) if (cmd.getOptionValueSource(k) === 'cli') out[k] = o[k];
  return out;
}

async function readJson(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new UsageError(`${what} ${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${what} ${path}: not valid JSON: ${(e as Error).message}`);
  }
}

export function register(program: Command): void {
  program
    .command('train')
    .description('train a ViT (from scratch or from --init weights); writes metrics.jsonl, checkpoints, plots and a summary to --out')
    .option('--data <dir>', "an ImageFolder tree (DIR/<class>/*.png or DIR/{train,val,test}/<class>/…) or 'fashion-mnist'")
    .requiredOption('--out <dir>', 'the run folder')
    .option('--preset <name>', 'a recipe: fashion-mnist (≥90%, patch 4) | fashion-mnist-p7 | fashion-mnist-quick | celluscan (explicit options win)')
    .option('--model <name>', 'ViT preset (vit_b_16, vit_s_16, vit_ti_16, …), num_classes from the data')
    .option('--config <file>', 'a JSON VitConfig (torchvision argument names; num_classes from the data)')
    .option('--init <weights>', 'initial weights (.safetensors or torch checkpoint); their labels must match the data')
    .option('--new-head', 'replace the --init weights’ classification head (fine-tune to a new label set)')
    .option('--num-heads <n>', "attention heads of an --init torch checkpoint (its tensors do not say; torchvision's presets are recognised)", intArg('--num-heads', 1))
    .option('--labels <preset>', "check the data's classes against a label preset (e.g. wbc14)")
    .option('--epochs <n>', 'epochs (default 10)', intArg('--epochs'))
    .option('--max-steps <n>', 'stop after this many optimizer steps', intArg('--max-steps'))
    .option('--batch-size <n>', 'images per batch (default 32)', intArg('--batch-size'))
    .option('--lr <x>', 'AdamW learning rate (default 3e-4)', floatArg('--lr'))
    .option('--weight-decay <x>', 'AdamW weight decay (default 1e-2, on all parameters)', floatArg('--weight-decay'))
    .option('--seed <n>', 'seed of the initialisation, split, order and augmentation (default 0)', intArg('--seed', 0))
    .option('--no-shuffle', 'batches in the sorted file order (last partial batch kept)')
    .option('--no-augment', 'no augmentation (default: horizontal flip + TrivialAugmentWide)')
    .addOption(new Option('--augment-mode <mode>', 'augmentation: trivialaugment (flip + TrivialAugmentWide), light (flip + ±2 px shifts), none').choices(['trivialaugment', 'light', 'none']))
    .option('--mean <m,m,m>', 'normalisation mean (default: the --init metadata, else computed from the training set)', listArg('--mean', 3))
    .option('--std <s,s,s>', 'normalisation std', listArg('--std', 3))
    .option('--resume', 'continue the run in --out from its checkpoint')
    .option('--subset <f>', 'stratified fraction of every split (e.g. 0.05, 0.2)', floatArg('--subset'))
    .option('--val-fraction <f>', 'fraction of train held out for validation when there is no val/ folder (default 0.1)', floatArg('--val-fraction'))
    .option('--warmup-steps <n>', 'linear LR warmup steps', intArg('--warmup-steps', 0))
    .addOption(new Option('--schedule <s>', 'LR schedule after warmup').choices(['constant', 'cosine']))
    .option('--label-smoothing <e>', 'cross-entropy label smoothing', floatArg('--label-smoothing'))
    .option('--clip-grad-norm <x>', 'clip the global gradient norm to x', floatArg('--clip-grad-norm'))
    .option('--grad-accum <n>', 'accumulate gradients over n batches per step', intArg('--grad-accum'))
    .option('--no-decay-norm-bias', 'no weight decay on LayerNorm parameters and biases')
    .option('--save-every <n>', 'also checkpoint every n steps', intArg('--save-every', 0))
    .option('--eval-batch-size <n>', 'images per evaluation batch', intArg('--eval-batch-size'))
    .option('--json', 'print the summary as one JSON object at the end')
    .addOption(new Option('--debug-interrupt-at-step <n>').argParser(intArg('--debug-interrupt-at-step')).hideHelp())
    .addOption(new Option('--debug-nan-at-step <n>').argParser(intArg('--debug-nan-at-step')).hideHelp())
    .action(async (o, cmd: Command) => {
      const given = explicit(cmd, o);
      const { getPreset } = await import('../train/presets.js');
      const { train } = await import('../train/trainer.js');
      const opts: Record<string, unknown> = {};
      // Options that cannot take effect together are refused rather than one silently winning.
      if (o.resume && given.preset) throw new UsageError('train: --preset does not apply with --resume (a resumed run keeps its own settings)');
      if (given.augment === false && given.augmentMode && given.augmentMode !== 'none') throw new UsageError(`train: --no-augment and --augment-mode ${given.augmentMode} contradict each other`);
      if (given.newHead && !o.init && !o.resume) throw new UsageError('train: --new-head replaces the head of --init weights; give --init W too');
      if (given.numHeads !== undefined && !o.init) throw new UsageError('train: --num-heads is for --init torch checkpoints (the heads of a new model come from --model or --config)');
      if (o.preset && !o.resume) {
        const p = getPreset(o.preset);
        if (p.options.requiresInit && !o.init) throw new UsageError(`--preset ${p.name} fine-tunes pretrained weights: give --init W.safetensors (${p.notes?.join('; ') ?? ''})`);
        const { requiresInit: _r, ...rest } = p.options;
        Object.assign(opts, rest);
        if (rest.config && (given.model || given.config)) delete opts.config;
      }
      const map: Record<string, string> = { noDecayNormBias: 'decayNormBias' };
      for (const [k, v] of Object.entries(given)) {
        if (['preset', 'json', 'config', 'augment', 'augmentMode', 'debug'].includes(k)) continue;
        opts[map[k] ?? k] = v;
      }
      if (given.augment === false) opts.augment = 'none';
      if (given.augmentMode) opts.augment = given.augmentMode;
      if (given.config) opts.config = await readJson(o.config, '--config');
      if (given.model && !given.config) delete opts.config;
      if (!opts.data && !o.resume) throw new UsageError('train: --data DIR|fashion-mnist is required (or --preset fashion-mnist)');
      if (opts.init && (given.model || given.config)) throw new UsageError('train: give either --init (the config comes from the weights) or --model/--config, not both');
      // With --json, stdout carries only the summary object: progress and messages go to stderr.
      if (o.json) opts.stream = process.stderr;
      const r = await train(opts as never);
      if (o.json) output(true, r.summary, () => '');
      else if (r.status === 'completed') {
        const t = r.test ?? r.val;
        process.stdout.write(
          `done: ${r.steps} steps in ${(r.wallS / 60).toFixed(1)} min, ${r.imagesPerS.toFixed(1)} images/s, peak GPU memory ${(r.summary.gpu_memory as { peak_mib: number }).peak_mib.toFixed(0)} MiB` +
            (t ? `; ${t.split} accuracy ${(100 * t.report.accuracy).toFixed(2)}%` : '') +
            `\nwrote ${r.files.join(', ')}\n`,
        );
      }
      if (r.status === 'diverged') process.exitCode = 1;
      if (r.status === 'interrupted') process.exitCode = 130;
    });

  program
    .command('eval')
    .description('accuracy, per-class precision/recall/F1 and the confusion matrix of a model on a data split')
    .requiredOption('--weights <file>', 'CelluScan .safetensors (e.g. RUN/model.safetensors)')
    .requiredOption('--data <dir>', "an ImageFolder tree or 'fashion-mnist'")
    .addOption(new Option('--split <s>', 'the split to evaluate').choices(['train', 'val', 'test']).default('test'))
    .option('--batch-size <n>', 'images per batch', intArg('--batch-size'), 64)
    .option('--val-fraction <f>', 'as in training, to find the same val split (default 0.1)', floatArg('--val-fraction'))
    .option('--subset <f>', 'stratified fraction of the split', floatArg('--subset'))
    .option('--seed <n>', 'seed of the val split / subset (as in training)', intArg('--seed', 0))
    .option('--json', 'one JSON object')
    .action(async (o) => {
      const { evalCommand } = await import('../train/trainer.js').then(async (m) => ({ evalCommand: await makeEval(m) }));
      const r = await evalCommand(o);
      const { formatReport } = await import('../train/metrics.js');
      output(o.json, { ...r, report: undefined }, () => {
        const notes = r.notes.map((n: string) => `note: ${n}\n`).join('');
        return notes + formatReport(r.report, r.labels, `${r.weights} on ${r.data} (${r.split}, ${r.report.count} images): loss ${r.loss.toFixed(4)}`);
      });
    });
}

async function makeEval(m: typeof import('../train/trainer.js')) {
  return async (o: { weights: string; data: string; split: 'train' | 'val' | 'test'; batchSize: number; valFraction?: number; subset?: number; seed: number }) => {
    // read and told apart as predict and attention do (a missing file, a torch checkpoint to convert first: named)
    const bytes = await (await import('./vit.js')).readWeightsBytes(o.weights);
    const { loadSplit, DataError } = await import('../train/data.js');
    const { parseSafetensorsFile, readCelluscanMetadata } = await import('../vit/safetensors.js');
    const md = readCelluscanMetadata(parseSafetensorsFile(bytes, o.weights).metadata);
    if (!md.config) throw new UsageError(`${o.weights}: no celluscan_config metadata (convert it with \`celluscan convert\` first)`);
    let split;
    try {
      split = await loadSplit({ data: o.data, split: o.split, imageSize: md.config.image_size, valFraction: o.valFraction, subset: o.subset, seed: o.seed, warn: (w) => console.error(`warning: ${w}`) });
    } catch (e) {
      if (e instanceof DataError) throw new UsageError(`--split ${o.split}: ${e.message}`);
      throw e;
    }
    const data = { classes: split.classes, skipped: split.skipped, close: () => split.data.close() };
    const ds = split.data;
    try {
      const { initGpu } = await import('../kernels/device.js');
      await initGpu();
      const { loadModelFromSafetensors } = await import('../vit/predict.js');
      const lm = loadModelFromSafetensors(bytes, o.weights);
      const same = lm.labels.length === data.classes.length && lm.labels.every((l, i) => l === data.classes[i]);
      if (!same) throw new UsageError(`${o.weights}: its labels [${lm.labels.join(', ')}] do not match the data's classes [${data.classes.join(', ')}]`);
      const r = await m.evaluate(lm.model, ds, { mean: lm.mean, std: lm.std, labels: lm.labels, batchSize: o.batchSize, split: o.split });
      lm.model.dispose();
      return {
        weights: o.weights,
        data: o.data,
        split: o.split,
        loss: r.loss,
        accuracy: r.report.accuracy,
        per_class: r.report.per_class,
        macro: r.report.macro,
        confusion: r.report.confusion,
        labels: lm.labels,
        report: r.report,
        skipped: data.skipped,
        notes: lm.notes,
      };
    } finally {
      data.close();
    }
  };
}
