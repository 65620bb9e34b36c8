// Training progress: a one-line bar redrawn in place (loss, images/s, ETA) when the stream is a TTY, plain log
// lines every few seconds otherwise (CI logs, nohup, pipes). No dependency: a carriage return and ANSI erase-line.

export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(s: string): unknown;
}

export interface ProgressUpdate {
  step: number;
  totalSteps: number;
  epoch: number;
  loss: number;
  imagesPerS: number;
  lr: number;
}

/** Seconds as 1h02m, 3m05s or 12s. */
export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  const t = Math.round(s);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = t % 60;
  if (h) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m) return `${m}m${String(sec).padStart(2, '0')}s`;
  return `${sec}s`;
}

export class Progress {
  private readonly tty: boolean;
  private lastPlain = 0;
  private lastDraw = 0;
  private drawn = false;
  private readonly start = Date.now();
  private readonly startStep: number;
  /** Smoothed seconds per step (for the ETA). */
  private secPerStep = NaN;
  private lastT = Date.now();

  constructor(
    private readonly out: ProgressStream = process.stdout,
    opts: { startStep?: number; plainEverySeconds?: number; forceTty?: boolean } = {},
  ) {
    this.tty = opts.forceTty ?? !!out.isTTY;
    this.startStep = opts.startStep ?? 0;
    this.plainEvery = (opts.plainEverySeconds ?? 10) * 1000;
  }
  private readonly plainEvery: number;

  update(u: ProgressUpdate): void {
    const now = Date.now();
    const dt = (now - this.lastT) / 1000;
    this.lastT = now;
    this.secPerStep = Number.isNaN(this.secPerStep) ? dt : 0.9 * this.secPerStep + 0.1 * dt;
    const eta = (u.totalSteps - u.step) * this.secPerStep;
    const elapsed = (now - this.start) / 1000;
    const pct = u.totalSteps ? u.step / u.totalSteps : 0;
    const stats = `loss ${u.loss.toFixed(4)}  ${u.imagesPerS.toFixed(1)} img/s  lr ${u.lr.toExponential(2)}  epoch ${u.epoch + 1}  ${formatDuration(elapsed)} elapsed, ETA ${formatDuration(eta)}`;
    if (this.tty) {
      if (now - this.lastDraw < 100 && u.step !== u.totalSteps) return;
      this.lastDraw = now;
      const width = Math.max(10, Math.min(30, (this.out.columns ?? 100) - stats.length - 24));
      const fill = Math.round(pct * width);
      const bar = '█'.repeat(fill) + '░'.repeat(width - fill);
      this.out.write(`\r\x1b[2K${bar} ${String(u.step).padStart(String(u.totalSteps).length)}/${u.totalSteps} ${stats}`);
      this.drawn = true;
    } else if (now - this.lastPlain >= this.plainEvery || u.step === u.totalSteps || u.step === this.startStep + 1) {
      this.lastPlain = now;
      this.out.write(`step ${u.step}/${u.totalSteps} (${(100 * pct).toFixed(1)}%)  ${stats}\n`);
    }
  }

  /** A message on its own line (the bar, if any, is redrawn by the next update). */
  log(msg: string): void {
    this.clear();
    this.out.write(msg + '\n');
  }

  /** Leave the bar's line. */
  clear(): void {
    if (this.tty && this.drawn) {
      this.out.write('\r\x1b[2K');
      this.drawn = false;
    }
  }

  finish(): void {
    if (this.tty && this.drawn) this.out.write('\n');
    this.drawn = false;
  }
}
