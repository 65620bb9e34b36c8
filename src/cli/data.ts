// `celluscan data …`: data-set tools (balance, dedup, info). Registered from main.ts.
import type { Command } from 'commander';
import { floatArg, intArg, output, table } from './util.js';

/** Progress on stderr, only for people at a terminal (never in --json output). */
function progress(json: boolean) {
  if (json || !process.stderr.isTTY) return undefined;
  let last = 0;
  return (label: string, done: number, total: number) => {
    const now = Date.now();
    if (now - last < 250 && done < total) return;
    last = now;
    process.stderr.write(`\r${label} ${done}/${total}${done === total ? '\n' : ''}`);
  };
}

export function register(program: Command): void {
  const data = program.command('data').description('data-set tools: balance classes, find duplicates, describe a data source');

  data
    .command('balance <dir>')
    .description('copy an ImageFolder tree, topping up every class below --min-per-class with augmented copies (flip + TrivialAugmentWide)')
    .requiredOption('--min-per-class <n>', 'images every class must have', intArg('--min-per-class'))
    .requiredOption('--out <dir>', 'output folder (new or empty)')
    .option('--seed <s>', 'seed for the augmentation', intArg('--seed', 0), 0)
    .option('--json', 'one JSON object')
    .action(async (dir: string, o) => {
      const { BalanceInterrupted, balanceAsync, formatBalance } = await import('../train/balance.js');
      const p = progress(o.json);
      let r;
      try {
        // Ctrl-C / SIGTERM: the run removes its partial folder and stops; one line, and the shell's status for the signal.
        r = await balanceAsync(dir, { minPerClass: o.minPerClass, out: o.out, seed: o.seed, progress: p ? (c, d, t) => p(`augmenting ${c}`, d, t) : undefined });
      } catch (e) {
        if (!(e instanceof BalanceInterrupted)) throw e;
        console.error(`${p ? '\r\x1b[K' : ''}celluscan: ${e.message}`); // (over any progress line)
        process.exitCode = e.exitCode;
        return;
      }
      output(o.json, r, () => formatBalance(r));
    });

  data
    .command('dedup <dir>')
    .description('find exact (same pixels) and near (dHash) duplicate images; keeps the first in sorted order')
    .option('--threshold <h>', 'max Hamming distance of 64-bit dHashes for a near duplicate', intArg('--threshold', 0), 4)
    .option('--remove', 'delete the duplicates (otherwise only report them)')
    .option('--json', 'one JSON object')
    .action(async (dir: string, o) => {
      const { dedup, formatDedup } = await import('../train/dedup.js');
      const p = progress(o.json);
      const r = dedup(dir, { threshold: o.threshold, remove: !!o.remove, progress: p ? (d, t) => p('hashing', d, t) : undefined });
      output(o.json, r, () => formatDedup(r));
    });

  data
    .command('info <data>')
    .description("a data source's layout, classes and split sizes (a folder, or fashion-mnist[:DIR]); decodes nothing")
    .option('--val-fraction <f>', 'validation fraction when there is no val/ folder', floatArg('--val-fraction'), 0.1)
    .option('--subset <f>', 'stratified fraction of every split', floatArg('--subset'), 1)
    .option('--seed <s>', 'seed for the split and subset', intArg('--seed', 0), 0)
    .option('--json', 'one JSON object')
    .action(async (src: string, o) => {
      const { classCounts, describeIgnored, openSplits, undecodedImageExtension } = await import('../train/data.js');
      const s = openSplits({ data: src, valFraction: o.valFraction, subset: o.subset, seed: o.seed });
      const splits = (['train', 'val', 'test'] as const).filter((k) => s[k]);
      const counts = Object.fromEntries(splits.map((k) => [k, classCounts(s[k]!)]));
      // Files in formats that cannot be decoded are not images here (training could not read them): said, not counted.
      const ignored = { files: s.ignored.length, extensions: [...new Set(s.ignored.map((p) => undecodedImageExtension(p)!))].sort() };
      const r = { data: src, layout: s.layout, classes: s.classes, counts, sizes: Object.fromEntries(splits.map((k) => [k, s[k]!.length])), ignored };
      output(o.json, r, () =>
        `${s.layout}\n` +
        (s.ignored.length ? `${describeIgnored(s.ignored)}: ignored\n` : '') +
        '\n' +
        table(
          [...s.classes.map((c, i) => [c, ...splits.map((k) => counts[k][i])]), ['total', ...splits.map((k) => s[k]!.length)]],
          ['class', ...splits],
        ),
      );
    });
}
