/**
 * @file The Keras-style progress line for `fit` with verbose=1: step count, a bar, samples/s, the
 * running loss and metrics and the ETA. On a terminal it redraws in place (at most ten times a
 * second); otherwise it prints only the final line of each epoch, so logs stay short.
 */
export class ProgressBar {
  private last = 0;
  private readonly start = performance.now();
  private readonly tty: boolean;
  constructor(private readonly total: number, private readonly write: (s: string) => void = (s) => process.stdout.write(s)) {
    this.tty = typeof process !== 'undefined' && !!process.stdout?.isTTY;
  }
  update(step: number, samples: number, values: Record<string, number>, final = false): void {
    const now = performance.now();
    if (!final && (!this.tty || now - this.last < 100)) return;
    this.last = now;
    const secs = (now - this.start) / 1000;
    const width = 24;
    const done = Math.round((width * step) / this.total);
    const bar = '='.repeat(Math.max(done - 1, 0)) + (done > 0 ? (step === this.total ? '=' : '>') : '') + '.'.repeat(width - done);
    const rate = samples / Math.max(secs, 1e-9);
    const eta = step < this.total ? ` - ETA ${fmtTime((secs / step) * (this.total - step))}` : ` - ${fmtTime(secs)}`;
    const vals = Object.entries(values).map(([k, v]) => ` - ${k}: ${v.toFixed(4)}`).join('');
    const line = `${String(step).padStart(String(this.total).length)}/${this.total} [${bar}] ${rate.toFixed(0)} samples/s${vals}${eta}`;
    this.write(this.tty ? `\r${line}\x1b[K` : `${line}\n`);
    if (final && this.tty) this.write('\n');
  }
}

export function fmtTime(s: number): string {
  if (s < 60) return `${s.toFixed(1)}s`;
  return `${Math.floor(s / 60)}m${Math.round(s % 60).toString().padStart(2, '0')}s`;
}
