// `data balance` and signals: SIGINT (Ctrl-C) or SIGTERM during a run removes the hidden `.OUT.partial-*` folder, says
// so in one line and exits 130 / 143; a run first removes the partial folders left by a killed earlier run whose process
// is gone (and nothing else); the signal handlers are gone once a run ends.
//
// The CLI runs are slowed down with CELLUSCAN_TEST_BALANCE_DELAY_MS (a wait after every file written, read by
// balanceAsync only for tests), so that the signal reliably lands while the partial folder exists.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { seededPng } from './seededPng.js';
import { balance, balanceAsync, BalanceInterrupted } from '../src/train/balance.js';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'celluscan-balance-interrupt-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const png = seededPng;

/** An ImageFolder with classes a and b, three images each. */
function imageFolder(name: string): string {
  const root = join(tmp, name);
  let seed = 1;
  for (const c of ['a', 'b']) {
    mkdirSync(join(root, c), { recursive: true });
    for (let i = 0; i < 3; i++) writeFileSync(join(root, c, `${i}.png`), png(seed++));
  }
  return root;
}

const partials = (name: string) => readdirSync(tmp).filter((n) => n.startsWith(`.${name}.partial-`));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A pid that no process has now (a child that has exited and been reaped). */
function deadPid(): number {
  const pid = spawnSync(process.execPath, ['-e', '']).pid!;
  expect(() => process.kill(pid, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
  return pid;
}

/** `data balance` in a child process, signalled once its partial folder holds a file; its exit and output. */
async function interruptedRun(name: string, signal: 'SIGINT' | 'SIGTERM') {
  const src = imageFolder(`${name}-src`);
  const out = join(tmp, name);
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'data', 'balance', src, '--min-per-class', '50', '--out', out], {
    env: { ...process.env, CELLUSCAN_TEST_BALANCE_DELAY_MS: '200' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, sig) => resolve({ code, signal: sig })));
  let done = false;
  void exited.then(() => (done = true));
  // Wait for the run to be writing: its partial folder (named with its pid) exists and has a class folder in it.
  const mine = `.${name}.partial-${child.pid}-`;
  let seen = false;
  for (const t0 = Date.now(); !done && Date.now() - t0 < 60_000; await sleep(25)) {
    const p = readdirSync(tmp).find((n) => n.startsWith(mine));
    if (p && readdirSync(join(tmp, p)).length) {
      seen = true;
      break;
    }
  }
  expect(seen, `no partial folder appeared before the run ended (stderr: ${stderr})`).toBe(true);
  child.kill(signal);
  const exit = await exited;
  return { ...exit, stdout, stderr, out };
}

describe('data balance on SIGINT / SIGTERM', () => {
  it('Ctrl-C removes the partial folder, says nothing was written, and exits 130', async () => {
    const r = await interruptedRun('int-out', 'SIGINT');
    expect(r.signal, r.stderr).toBeNull();
    expect(r.code, r.stderr).toBe(130);
    expect(partials('int-out')).toEqual([]);
    expect(existsSync(r.out)).toBe(false);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n');
    expect(lines[lines.length - 1]).toBe(`celluscan: interrupted by SIGINT: nothing was written to '${r.out}'`);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  }, 90_000);

  it('SIGTERM does the same and exits 143', async () => {
    const r = await interruptedRun('term-out', 'SIGTERM');
    expect(r.code, r.stderr).toBe(143);
    expect(partials('term-out')).toEqual([]);
    expect(existsSync(r.out)).toBe(false);
    expect(r.stderr.trim().split('\n').pop()).toBe(`celluscan: interrupted by SIGTERM: nothing was written to '${r.out}'`);
  }, 90_000);
});

describe('stale partial folders', () => {
  it('a partial folder of a process that is gone is removed at the start of the next run, and nothing else is', () => {
    const src = imageFolder('stale-src');
    const out = join(tmp, 'stale-out');
    const dead = deadPid();
    const stale = `.stale-out.partial-${dead}-0123abcd`;
    mkdirSync(join(tmp, stale, 'a'), { recursive: true });
    writeFileSync(join(tmp, stale, 'a', '0.png'), png(7));
    // Kept: a live process's (this one's), names that are not exactly the pattern, another OUT's, a link.
    const kept = [
      `.stale-out.partial-${process.pid}-0123abcd`,
      `.stale-out.partial-${dead}-0123abcz`,
      `.stale-out.partial-${dead}-0123abcd.bak`,
      `.stale-out.partial-${dead}`,
      `stale-out.partial-${dead}-0123abcd`,
      `.stale-out2.partial-${dead}-0123abcd`,
    ];
    for (const k of kept) mkdirSync(join(tmp, k));
    mkdirSync(join(tmp, 'link-target'));
    symlinkSync(join(tmp, 'link-target'), join(tmp, `.stale-out.partial-${dead}-fedcba98`));
    kept.push(`.stale-out.partial-${dead}-fedcba98`);

    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'data', 'balance', src, '--min-per-class', '4', '--out', out], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(existsSync(join(tmp, stale))).toBe(false);
    expect(r.stderr).toContain(`removed ${join(tmp, stale)}: the partial output of an earlier run that was killed (process ${dead} no longer exists)`);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    for (const k of kept) expect(existsSync(join(tmp, k)), k).toBe(true);
    expect(readdirSync(join(out, 'a')).sort()).toEqual(['0.png', '0_aug0.png', '1.png', '2.png']);
    expect(readdirSync(join(tmp, 'link-target'))).toEqual([]);
  }, 60_000);
});

describe('balanceAsync in-process', () => {
  const counts = () => [process.listenerCount('SIGINT'), process.listenerCount('SIGTERM')];

  it('removes its signal handlers after a run that succeeds, fails, or is interrupted', async () => {
    const before = counts();
    const src = imageFolder('inproc-src');
    const r = await balanceAsync(src, { minPerClass: 4, out: join(tmp, 'inproc-ok'), warn: () => {} });
    expect(r.generated).toBe(2);
    expect(counts()).toEqual(before);
    // The same files as the synchronous balance.
    const s = balance(src, { minPerClass: 4, out: join(tmp, 'inproc-sync'), warn: () => {} });
    expect(r.classes).toEqual(s.classes);

    await expect(balanceAsync(src, { minPerClass: 4, out: join(tmp, 'inproc-ok'), warn: () => {} })).rejects.toThrow(/already exists and is not empty/);
    expect(counts()).toEqual(before);

    // A signal during the writing: the run's own SIGTERM listener called as a signal calls it (process.emit would also
    // reach the test runner's listeners).
    const others = process.listeners('SIGTERM');
    let emitted = false;
    const err = await balanceAsync(src, {
      minPerClass: 10,
      out: join(tmp, 'inproc-int'),
      warn: () => {},
      progress: () => {
        if (!emitted) {
          const mine = process.listeners('SIGTERM').filter((l) => !others.includes(l));
          expect(mine).toHaveLength(1);
          (mine[0] as (s: NodeJS.Signals) => void)('SIGTERM');
        }
        emitted = true;
      },
    }).catch((e) => e);
    expect(err).toBeInstanceOf(BalanceInterrupted);
    expect([err.signal, err.exitCode]).toEqual(['SIGTERM', 143]);
    expect(partials('inproc-int')).toEqual([]);
    expect(existsSync(join(tmp, 'inproc-int'))).toBe(false);
    expect(counts()).toEqual(before);
  });
});
