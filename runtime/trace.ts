/**
 * @file The runtime's dispatch trace (`--debug 5`, `DLC_DEBUG=5`): while a sink is set, every
 * program run reports each kernel it dispatches with its time, instead of running as one call.
 *
 * Wasm programs then call their kernels one at a time through the `k<i>` exports and time each with
 * `performance.now()` (exact per kernel, at the cost of one JS call per kernel). WebGPU programs
 * submit each dispatch as its own command buffer and time it from the completion of the previous one
 * (`onSubmittedWorkDone`), so a WebGPU time includes the per-submit overhead and events arrive
 * asynchronously; without a sink both run exactly as they do untraced (one call, one submit).
 *
 * `chromeTrace` turns collected events into a file Perfetto (ui.perfetto.dev) or chrome://tracing
 * opens. Module state: the sink is global to this copy of the runtime, which is what a debugging switch
 * wants. Imports nothing.
 */

export interface DispatchEvent {
  readonly backend: 'wasm' | 'webgpu';
  /** The program's label, e.g. `sequential.train`. */
  readonly program: string;
  /** How many times this program has run before this run (0 for the first). */
  readonly run: number;
  /** Position of the kernel in the program's schedule. */
  readonly index: number;
  readonly kernel: string;
  /** When the dispatch started, in ms on `performance.now()`'s clock. */
  readonly start: number;
  readonly ms: number;
}

export type DispatchSink = (e: DispatchEvent) => void;

let sink: DispatchSink | null = null;

/** Start (a function) or stop (null) tracing every dispatch of every program run. */
export function setDispatchTrace(s: DispatchSink | null): void {
  sink = s;
}

/** The current sink, or null when not tracing. */
export function dispatchTrace(): DispatchSink | null {
  return sink;
}

/**
 * Events as a Chrome trace (the Trace Event JSON that Perfetto and chrome://tracing open): one
 * complete event per dispatch, one track per program, times in microseconds.
 */
export function chromeTrace(events: readonly DispatchEvent[]): string {
  const tracks = [...new Set(events.map((e) => `${e.backend} ${e.program}`))];
  const meta = tracks.map((t, i) => ({ name: 'thread_name', ph: 'M', pid: 1, tid: i + 1, args: { name: t } }));
  const us = (ms: number) => Math.round(ms * 1000) / 1000;
  const spans = events.map((e) => ({
    name: e.kernel,
    cat: e.backend,
    ph: 'X',
    pid: 1,
    tid: tracks.indexOf(`${e.backend} ${e.program}`) + 1,
    ts: us(e.start * 1000),
    dur: us(e.ms * 1000),
    args: { run: e.run, index: e.index },
  }));
  return `${JSON.stringify({ displayTimeUnit: 'ms', traceEvents: [...meta, ...spans] })}\n`;
}

/** One trace line, as the CLI prints it. */
export function formatDispatch(e: DispatchEvent): string {
  return `[dlc trace] ${e.backend} ${e.program} run ${e.run} #${String(e.index).padStart(3, '0')} ${e.kernel} ${e.ms.toFixed(3)} ms`;
}
