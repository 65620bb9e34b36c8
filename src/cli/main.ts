// celluscan: command-line entry. Every command prints a readable result, or one JSON object with
// --json; errors are one line and a non-zero exit (the stack only with --debug).
import { Command, CommanderError, Option } from 'commander';
import { destroyGpu, onGpuReady } from '../kernels/device.js';
import { adapterInfo, formatInfo } from './info.js';
import { accessSync, constants as fsConstants, existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { intArg, intListArg, matmulVariantList, nameList, output, table, UsageError } from './util.js';

const program = new Command();
program
  .name('celluscan')
  .description('CelluScan on WebGPU: kernels, autograd and a ViT-B/16, in Node through Dawn')
  .option('--debug', 'print stack traces on errors')
  .showHelpAfterError('(add --help for the options)')
  .enablePositionalOptions()
  .exitOverride();

program
  .command('info')
  .description('print the WebGPU adapter, its features and the limits that matter')
  .option('--json', 'one JSON object')
  .action(async (o) => {
    const i = await adapterInfo();
    output(o.json, i, () => formatInfo(i));
  });

program
  .command('selfcheck')
  .description('check every kernel against its float64 reference on awkward shapes')
  .option('--json', 'one JSON object')
  .action(async (o) => {
    const ok = await runSelfCheck(o.json);
    if (!ok) process.exitCode = 1;
  });

/** A --results-dir that cannot be written is found before the benches run (it was found after, when recording). */
function checkResultsDir(op: string, dir: string | undefined): void {
  if (dir === undefined) return;
  try {
    if (existsSync(dir) && !statSync(dir).isDirectory()) throw new UsageError(`${op}: --results-dir ${dir} is a file, not a folder`);
    // nothing is created here (a run that records nothing leaves no folder): the nearest existing folder must be writable
    let at = resolve(dir);
    while (!existsSync(at) && dirname(at) !== at) at = dirname(at);
    if (!statSync(at).isDirectory()) throw Object.assign(new Error('not a folder'), { code: 'ENOTDIR' });
    accessSync(at, fsConstants.W_OK);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'EACCES' || code === 'EROFS' ? 'not writable' : code === 'ENOTDIR' || code === 'EEXIST' ? 'a file stands in its path' : (e as Error).message;
    throw new UsageError(`${op}: --results-dir ${dir}: ${why}`);
  }
}

async function runSelfCheck(json: boolean, info?: unknown): Promise<boolean> {
  const { selfCheck } = await import('../kernels/selfcheck.js');
  const results = await selfCheck(json ? undefined : (r) => console.log(`${r.ok ? 'ok  ' : 'FAIL'} ${r.kernel.padEnd(26)} ${r.shape.padEnd(20)} error/tolerance ${r.worstRatio.toFixed(3)}`));
  const failed = results.filter((r) => !r.ok);
  output(json, { ...(info ? { info } : {}), selfcheck: results, passed: results.length - failed.length, failed: failed.length }, () =>
    failed.length ? `${failed.length} of ${results.length} kernel checks FAILED` : `all ${results.length} kernel checks passed`,
  );
  return failed.length === 0;
}

const bench = program
  .command('bench')
  // `bench matmul --json`: options after a subcommand belong to it, not to `bench` itself.
  .enablePositionalOptions()
  .description(`benchmarks: ${['all', 'matmul', 'softmax', 'layernorm', 'gelu', 'attention', 'vit', 'train'].join(' | ')} (records bench/results/<adapter>.*)`)
  .argument('[which...]', 'benchmarks to run (default: all)')
  .option('--quick', 'smaller shapes, fewer runs')
  .option('--runs <n>', 'timed runs per case', intArg('--runs'))
  .option('--no-peers', 'skip tfjs / ONNX Runtime / PyTorch peers')
  .option('--no-record', 'do not write bench/results/')
  .option('--results-dir <dir>', 'record into this folder instead of bench/results/')
  .option('--json', 'one JSON object')
  .action(async (which: string[], o) => {
    const { BENCHMARKS, runSuite, recordSuite } = await import('../../bench/suite.js');
    const names = !which.length || which.includes('all') ? [...BENCHMARKS] : which;
    if (o.resultsDir !== undefined && !o.record) throw new UsageError('bench: --results-dir and --no-record contradict each other');
    const bad = names.filter((n) => !(BENCHMARKS as readonly string[]).includes(n));
    if (bad.length) throw new UsageError(`bench: unknown benchmark ${bad.join(', ')} (choose from all, ${BENCHMARKS.join(', ')})`);
    if (o.record) checkResultsDir('bench', o.resultsDir);
    // Recorded after every bench, not only at the end: a run cut short keeps the benches it finished (each write is
    // atomic and merges with the file's rows of benches this run has not reached).
    let files: string[] = [];
    const record = o.record ? async (soFar: Parameters<typeof recordSuite>[0]) => void (files = await recordSuite(soFar, { dir: o.resultsDir })) : undefined;
    const result = await runSuite(names as never, { quick: o.quick, runs: o.runs, peers: o.peers }, o.json ? () => {} : (s) => console.log(s), record);
    output(o.json, { ...result, files }, () => (files.length ? `recorded ${files.join(', ')}` : ''));
  });

bench
  .command('matmul')
  .description(
    'matmul time and GFLOP/s at one shape: the best wall-clock run after a warm-up (dispatch + read-back of C) and, where the adapter has timestamp queries, the median GPU time (gpu_ms, gpu_gflops); ' +
      'several --variant: each call timed without read-back (GPU time, else the best wall clock) in alternating rounds; tfjs-backend-webgpu beside it',
  )
  .option('--m <m>', 'rows of A', intArg('--m'), 1024)
  .option('--n <n>', 'columns of B', intArg('--n'), 1024)
  .option('--k <k>', 'inner dimension', intArg('--k'), 1024)
  .option('--trans-a', 'A stored [k, m] (as in a Linear layer\'s weight gradient dYᵀ·X)')
  .option('--trans-b', 'B stored [n, k] (as in a Linear layer\'s forward x·Wᵀ)')
  .option('--batch <b>', 'products per call: A [b, m, k], B [b, k, n] (as attention\'s per-head products)', intArg('--batch'))
  .option('--shared-b', 'with --batch: one 2-D B for every product (as a Linear layer\'s weight)')
  .option('--variant <names>', "kernel variant (default: the adapter's choice); several, comma-separated, are timed side by side in alternating rounds, each checked first")
  .option('--runs <n>', 'timed runs (with several variants: rounds)', intArg('--runs'), 5)
  .option('--no-peers', 'skip tfjs-backend-webgpu (it runs for plain, unbatched products only)')
  .option('--json', 'one JSON line')
  .action(async (o) => {
    const { benchMatmul, compareMatmulVariants } = await import('../../bench/matmul.js');
    if (o.sharedB && o.batch === undefined) throw new UsageError('bench matmul: --shared-b needs --batch');
    const variants = o.variant === undefined ? [] : await matmulVariantList('bench matmul', '--variant', o.variant);
    const shape = { m: o.m, n: o.n, k: o.k, transA: o.transA, transB: o.transB, batch: o.batch, sharedB: o.sharedB, runs: o.runs };
    if (variants.length > 1) {
      const { fmtNum } = await import('../../bench/format.js');
      const r = await compareMatmulVariants({ ...shape, variants });
      output(o.json, r, () =>
        `matmul ${r.shape} on ${r.adapter}: ${r.rounds} alternating rounds, ${r.clock}; each variant checked against float64 on ${r.checked === 'operands' ? 'these operands' : 'small shapes (this product is too large for the reference)'}\n` +
        table(r.rows.map((x) => [x.variant, x.kernel, fmtNum(x.gpu_ms ?? x.best_ms), fmtNum(x.gflops), fmtNum(x.vs_first)]), ['variant', 'kernel', 'ms', 'GFLOP/s', `vs ${r.rows[0].variant}`]),
      );
      return;
    }
    const r = await benchMatmul({ ...shape, variant: variants[0], peers: o.peers });
    output(o.json, r, () => table(Object.entries(r as Record<string, unknown>).map(([k, v]) => [k, typeof v === 'object' ? JSON.stringify(v) : String(v)]), ['field', 'value']));
  });

bench
  .command('rows')
  .description('the row kernels (softmax, layernorm) per variant at one shape: forward and backward time and GB/s, alternated in one process, each variant checked against float64 first')
  .option('--op <op>', 'softmax or layernorm', 'softmax')
  .option('--rows <n>', 'rows (default: ViT-B/16 shapes, 2 images (softmax) / 8 (layernorm) on a CPU adapter, 32 on a GPU)', intArg('--rows'))
  .option('--cols <n>', 'columns (default: 197 for softmax, 768 for layernorm)', intArg('--cols'))
  .option('--variant <names>', "comma-separated: 'library' (the adapter's choice), team<T>[/<WG>] (T invocations per row through workgroup memory; team1 = one per row, no barriers), subgroup[/<WG>] (one subgroup per row) (default: library and the adapter's candidates)")
  .option('--runs <n>', 'alternating rounds', intArg('--runs'), 5)
  .option('--json', 'one JSON object')
  .action(async (o) => {
    const { compareRowVariants, rowCandidates, ROW_OPS, LIBRARY } = await import('../../bench/rows.js');
    if (!(ROW_OPS as readonly string[]).includes(o.op)) throw new UsageError(`bench rows: --op must be one of ${ROW_OPS.join(', ')}, got '${o.op}'`);
    const { parseRowVariant } = await import('../kernels/softmax.js');
    const given = o.variant === undefined ? undefined : nameList('bench rows', '--variant', o.variant);
    for (const v of given ?? []) {
      if (v === LIBRARY) continue;
      try {
        parseRowVariant(v);
      } catch (e) {
        throw new UsageError(`bench rows: --variant: ${(e as Error).message}`);
      }
    }
    const { initGpu, isSoftwareAdapter } = await import('../kernels/device.js');
    await initGpu();
    const software = isSoftwareAdapter();
    const variants = given ?? [LIBRARY, ...rowCandidates()];
    const images = software ? (o.op === 'softmax' ? 2 : 8) : 32;
    const rows = o.rows ?? (o.op === 'softmax' ? images * 12 * 197 : images * 197);
    const cols = o.cols ?? (o.op === 'softmax' ? 197 : 768);
    const { fmtNum } = await import('../../bench/format.js');
    const r = await compareRowVariants({ op: o.op, rows, cols, variants, runs: o.runs });
    const first = r.results[0].variant;
    output(o.json, r, () =>
      `${r.op} ${r.rows}×${r.cols} on ${r.adapter}: ${r.rounds} alternating rounds, ${r.clock}; each variant checked against float64 on ${r.checked_rows === r.rows ? 'every row' : `${r.checked_rows} of the rows (the first and the last)`}\n` +
      table(
        r.results.map((x) => [x.variant, x.plan, fmtNum(x.fwd_ms), fmtNum(x.fwd_gbps), fmtNum(x.fwd_vs_first), fmtNum(x.bwd_ms), fmtNum(x.bwd_gbps), fmtNum(x.bwd_vs_first)]),
        ['variant', 'runs as', 'fwd ms', 'fwd GB/s', `fwd vs ${first}`, 'bwd ms', 'bwd GB/s', `bwd vs ${first}`],
      ) + `\n(GB/s: the bytes an ideal kernel moves, x read and y written forward, two row tensors read and dx written backward; vs ${first}: > 1 is faster)`,
    );
  });

bench
  .command('attention')
  .description('fused attention variants beside the explicit path (matmul → softmax → matmul): forward and forward+backward time and peak memory, at one shape or a sweep of sequence lengths (--seq 197,577,1025), each variant checked against the explicit path before it is timed')
  .option('--variant <names>', "comma-separated fused variants (rows, tiled, blocked, subgroup, subgroup-saved, flash, flash-ds, with @ blockings), or 'all' (default: the adapter's)")
  .option('--batch <n>', 'batch (default: 1 on a CPU adapter, 32 on a GPU)', intArg('--batch'))
  .option('--heads <n>', 'heads', intArg('--heads'), 12)
  .option('--seq <n,…>', 'tokens, or a comma-separated sweep (one table per length)', intListArg('--seq'), [197])
  .option('--dim <n>', 'head dimension', intArg('--dim'), 64)
  .option('--runs <n>', 'timed runs per path', intArg('--runs'), 3)
  .option('--json', 'one JSON array')
  .action(async (o) => {
    const { ATTENTION_VARIANTS, defaultAttentionVariant } = await import('../kernels/attention.js');
    const names: string[] = o.variant === undefined ? [] : o.variant === 'all' ? [...ATTENTION_VARIANTS] : String(o.variant).split(',').map((x: string) => x.trim());
    const bad = names.filter((x) => !(ATTENTION_VARIANTS as readonly string[]).includes(x.split('@')[0]));
    if (bad.length) throw new UsageError(`bench attention: unknown variant ${bad.join(', ')} (choose from ${ATTENTION_VARIANTS.join(', ')}, or all)`);
    const { benchAttentionCompare } = await import('../../bench/attention.js');
    const { initGpu } = await import('../kernels/device.js');
    await initGpu();
    // The whole name, @ blocking included, by the kernels' own parser (one tiny forward at this head dimension) before
    // anything is timed; what this adapter cannot run (no subgroups, tiles too large) stays a row of the table.
    const { attentionForward } = await import('../kernels/attention.js');
    const { GpuArray, scope } = await import('../kernels/memory.js');
    for (const v of names) {
      try {
        scope(() => {
          const x = GpuArray.zeros([1, 1, 1, o.dim]);
          attentionForward(x, x, x, { variant: v });
        });
      } catch (e) {
        if (e instanceof RangeError && /bad variant|takes no '@' parameters/.test(e.message)) throw new UsageError(`bench attention: --variant: ${e.message.replace(/^attentionForward: /, '')}`);
      }
    }
    // One comparison per sequence length (each its own explicit baseline), shortest first as given.
    const bySeq: Record<string, unknown>[][] = [];
    for (const seq of o.seq as number[]) {
      bySeq.push((await benchAttentionCompare({ batch: o.batch, heads: o.heads, seq, dim: o.dim, runs: o.runs, variants: names.length ? names : [defaultAttentionVariant()] })) as Record<string, unknown>[]);
    }
    const f = (x: unknown, d = 2) => (typeof x === 'number' ? x.toFixed(d) : '');
    const mb = (x: unknown) => (typeof x === 'number' ? (x >= 100 ? x.toFixed(0) : x.toPrecision(3)) : '');
    output(o.json, bySeq.flat(), () =>
      bySeq
        .map(
          (rows) =>
            `${rows[0]?.adapter}, ${rows[0]?.shape} (${rows[0]?.clock} time; speed-up = explicit / fused, > 1: fused is faster; MiB = peak GPU memory above q, k, v and the gradient, memory ratio = explicit / fused)\n` +
            table(
              rows.map((r) => [String(r.path), f(r.fwd_ms), f(r.fwd_bwd_ms), f(r.fwd_speedup), f(r.fwd_bwd_speedup), mb(r.fwd_mib), mb(r.fwd_bwd_mib), f(r.fwd_bwd_mem_ratio), String(r.note ?? '')]),
              ['path', 'fwd ms', 'fwd+bwd ms', 'fwd speed-up', 'fwd+bwd speed-up', 'fwd MiB', 'fwd+bwd MiB', 'memory ratio', 'note'],
            ),
        )
        .join('\n\n'),
    );
  });

bench
  .command('profile')
  .description('GPU time per kernel (timestamp queries) of one training step or forward pass, grouped by pass label')
  .option('--model <name>', "'fmnist' (the patch-7 Fashion-MNIST model of the fashion-mnist-quick and fashion-mnist-p7 presets: image 28, 17 tokens), a ViT preset (vit_b_16, vit_ti_16, …) or a .json VitConfig file", 'fmnist')
  .option('--batch <n>', 'images per step (default 128 for fmnist and small-image configs, 8 otherwise)', intArg('--batch'))
  .addOption(new Option('--what <w>', 'what to profile').choices(['train', 'forward']).default('train'))
  .addOption(new Option('--attention <path>', "attention path (default: the adapter's)").choices(['fused', 'explicit']))
  .option('--top <n>', 'rows to print', intArg('--top'), 25)
  .option('--json', 'one JSON object with every label')
  .action(async (o) => {
    const { profileStep, formatProfile } = await import('../../bench/profile.js');
    const r = await profileStep({ model: o.model, batch: o.batch, what: o.what, attention: o.attention });
    output(o.json, r, () => formatProfile(r, o.top));
  });

bench
  .command('browser')
  .description(
    "matmul variants in headless Chromium on the browser's WebGPU adapter (SwiftShader without a GPU: what the web page runs on), each checked against float64 first; optionally attention paths and a ViT forward",
  )
  .option('--variants <names>', 'comma-separated matmul variants (default: subgroup, subgroup@2x4/0x4, blocked-vec4, blocked, tiled-vec4, tiled)')
  .option('--shapes <list>', "comma-separated MxNxK with optional tA / tB, e.g. '512x512x512,2176x192x64tB' (default: 512³ and a small ViT's Linear products in their three forms)")
  .option('--runs <n>', 'timed runs per case after a warm-up (ViT: at most 2)', intArg('--runs'), 4)
  .option('--attention <BxHxNxD>', 'also time attention at this shape, e.g. 1x12x197x64: the explicit path and fused variants, each checked against it')
  .option('--attention-variants <names>', 'comma-separated fused attention variants for --attention (default: subgroup-saved, subgroup, rows)')
  .option('--vit <preset>', "also time a ViT preset's forward in the page (random weights, 14 classes), e.g. vit_b_16")
  .option('--vit-batch <n>', 'images per forward for --vit (default 1)', intArg('--vit-batch'))
  .option('--vit-matmul <names>', "comma-separated matmul variants the --vit forward runs with, in turn; the first one's logits are the others' reference (default: the adapter's)")
  .option('--timeout <s>', 'give up after this many seconds (default 1200)', intArg('--timeout'))
  .option('--no-peers', 'skip tfjs-backend-webgpu (timed in the page beside the library\'s choice, per shape)')
  .option('--record', 'write the rows to bench/results/<adapter>-browser.{json,md,png} (rows of benches not run this time are kept)')
  .option('--results-dir <dir>', 'with --record: write into this folder instead of bench/results/')
  .option('--json', 'one JSON object')
  .action(async (o) => {
    const { benchBrowserMatmul, browserBenchTable, browserAttentionTable, browserVitTable, browserSuiteResult } = await import('../../bench/browserMatmul.js');
    const list = (flag: string, value: unknown) => nameList('bench browser', flag, value);
    const matmulVariants = (flag: string, value: unknown) => matmulVariantList('bench browser', flag, value);
    for (const [child, parent] of [['attentionVariants', 'attention'], ['vitMatmul', 'vit'], ['vitBatch', 'vit'], ['resultsDir', 'record']] as const) {
      if (o[child] !== undefined && o[parent] === undefined) {
        const flag = (k: string) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
        throw new UsageError(`bench browser: ${flag(child)} needs ${flag(parent)}`);
      }
    }
    if (o.record) checkResultsDir('bench browser', o.resultsDir);
    let vit;
    if (o.vit !== undefined) {
      const { VIT_PRESETS } = await import('../vit/config.js');
      if (!(o.vit in VIT_PRESETS)) throw new UsageError(`bench browser: unknown --vit preset '${o.vit}' (known: ${Object.keys(VIT_PRESETS).join(', ')})`);
      vit = { config: o.vit, batch: o.vitBatch ?? 1, matmulVariants: o.vitMatmul === undefined ? [] : await matmulVariants('--vit-matmul', o.vitMatmul) };
    }
    let attention;
    if (o.attention !== undefined) {
      const m = String(o.attention).match(/^(\d+)x(\d+)x(\d+)x(\d+)$/);
      if (!m || m.slice(1).some((d) => Number(d) < 1)) throw new UsageError(`bench browser: bad --attention '${o.attention}' (expected BxHxNxD with sizes >= 1, e.g. 1x12x197x64)`);
      const { ATTENTION_VARIANTS } = await import('../kernels/attention.js');
      const variants = o.attentionVariants === undefined ? ['subgroup-saved', 'subgroup', 'rows'] : list('--attention-variants', o.attentionVariants);
      const bad = variants.filter((x) => !(ATTENTION_VARIANTS as readonly string[]).includes(x.split('@')[0]));
      if (bad.length) throw new UsageError(`bench browser: unknown attention variant ${bad.join(', ')} (choose from ${ATTENTION_VARIANTS.join(', ')})`);
      const [batch, heads, seq, dim] = m.slice(1).map(Number);
      attention = { batch, heads, seq, dim, variants };
    }
    const variants = o.variants === undefined ? undefined : await matmulVariants('--variants', o.variants);
    const shapes =
      o.shapes === undefined
        ? undefined
        : list('--shapes', o.shapes).map((x) => {
            const m = x.match(/^(\d+)x(\d+)x(\d+)(tA)?(tB)?$/);
            if (!m || [m[1], m[2], m[3]].some((d) => Number(d) < 1)) throw new UsageError(`bench browser: bad shape '${x}' (expected MxNxK with sizes >= 1, then optionally tA and/or tB, e.g. 2176x192x64tB)`);
            return { m: Number(m[1]), n: Number(m[2]), k: Number(m[3]), transA: !!m[4], transB: !!m[5] };
          });
    const r = await benchBrowserMatmul({ variants, shapes, runs: o.runs, attention, vit, timeoutS: o.timeout, roofline: true, peers: o.peers });
    const roof = r.roofline ? `\nmeasured roofline: ${r.roofline.peakGflops.toFixed(1)} GFLOP/s, ${r.roofline.peakGBs.toFixed(2)} GB/s (${r.roofline.clock})` : '';
    // a case that failed its check is a failed run (after the table, which says which), and is not recorded
    const failed =
      r.rows.flatMap((x) => x.cells).filter((c) => c.error).length +
      r.rows.filter((x) => x.peer?.ours.error).length +
      (r.attention?.rows.filter((x) => x.failed).length ?? 0) +
      (r.vit?.rows.filter((x) => x.failed).length ?? 0);
    let files: string[] = [];
    if (o.record && !failed) {
      const { recordSuite } = await import('../../bench/suite.js');
      const s = browserSuiteResult(r);
      files = await recordSuite(s, { dir: o.resultsDir, name: `${s.adapter}-browser` });
    }
    output(
      o.json,
      { ...r, ...(o.record ? { files } : {}) },
      () =>
        `${r.browser}, adapter ${r.adapter?.key} (${r.adapter?.description || 'no description'}; features ${r.adapter?.features.join(', ')}); library's choice: ${r.adapter?.defaultChoice}${roof}\nmatmul GFLOP/s (wall clock, ≥ 30 ms of calls per sync, best of ${o.runs}):\n${browserBenchTable(r)}` +
        (r.attention ? `\n\n${browserAttentionTable(r)}` : '') +
        (r.vit ? `\n\n${browserVitTable(r)}` : '') +
        (r.consoleErrors.length ? `\n\nthe page's console reported ${r.consoleErrors.length} error(s), the first: ${r.consoleErrors[0]}` : '') +
        (files.length ? `\n\nrecorded ${files.join(', ')}` : ''),
    );
    if (failed) throw new Error(`bench browser: ${failed} case(s) failed (marked ✗)${o.record ? '; nothing was recorded' : ''}`);
  });

// Command groups owned by other modules register themselves here.
// (one line each: import { register as registerX } from './x.js'; registerX(program);)
import { register as registerTrain } from './train.js';
registerTrain(program);
import { register as registerVit } from './vit.js';
registerVit(program);
import { register as registerData } from './data.js';
registerData(program);
import { loadTunings, register as registerTune } from './tune.js';
registerTune(program);
// Every command that starts the GPU uses the choices `celluscan tune` cached for this adapter.
onGpuReady(loadTunings);

async function main(argv: string[]): Promise<number> {
  // --debug may stand anywhere on the line; it is read here, not by a command.
  const debug = argv.includes('--debug');
  try {
    await program.parseAsync(argv.filter((a) => a !== '--debug'));
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2; // commander already printed it
    const err = e as Error;
    if (debug) console.error(err.stack ?? err);
    else console.error(`celluscan: ${err.message}${err instanceof UsageError ? '' : ''}`);
    return 1;
  } finally {
    destroyGpu();
  }
}

main(process.argv).then((code) => {
  // Dawn can keep the event loop alive; exit explicitly once output is flushed.
  process.stdout.write('', () => process.exit(code));
});
