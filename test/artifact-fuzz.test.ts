/**
 * @file Fuzzing the artifact loader: one small artifact is compiled once (in memory, buildArtifact),
 * then thousands of damaged copies are loaded through `loadArtifact` with a custom `readFile` on the
 * Wasm backend. The manifest is mutated field by field (deleted, of the wrong type, negative, huge,
 * NaN, strings, nested garbage, offsets past the arena, shapes that do not match the weights), and
 * the weights file byte by byte (truncated, flipped bytes in the header length and the JSON header,
 * bad dtypes, offsets past the end, shapes changed). Every outcome must be a clean load, which then
 * predicts (and trains) throwing nothing but ArtifactError, or a named refusal: ArtifactError or
 * SafetensorsError. Never a TypeError, a RangeError or a view out of bounds.
 *
 * Seeded (mulberry32), so a failing case reproduces from the seed and case number in its message.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { buildArtifact, Dense, Input, Model } from '../compiler/index.ts';
import type { Manifest } from '../runtime/artifact.ts';
import { ArtifactError, loadArtifact } from '../runtime/artifact.ts';
import { SafetensorsError } from '../runtime/safetensors.ts';
import { mulberry32 } from './helpers/gradcheck.ts';

const SEED = 0x5eed;
const MANIFEST_CASES = 2400;
const WEIGHTS_CASES = 800;
const B = 4;

let files = new Map<string, Uint8Array>();
let manifest: Manifest;

beforeAll(async () => {
  const x = Input({ shape: [5], name: 'x' });
  const h = Dense(6, { activation: 'relu', name: 'hidden' }).apply(x);
  const out = Dense(3, { activation: 'softmax', name: 'head' }).apply(h);
  const model = Model({ inputs: x, outputs: out, name: 'fuzz', seed: 1 });
  model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy', metrics: ['accuracy'] });
  // Both targets, so the manifest carries the webgpu fields too (loaded on wasm, they are still checked).
  const art = await buildArtifact(model, { batchSize: B, runtime: '' });
  files = new Map([...art.files].map(([k, v]) => [k, typeof v === 'string' ? new TextEncoder().encode(v) : v]));
  manifest = JSON.parse(new TextDecoder().decode(files.get('manifest.json'))) as Manifest;
});

type Rng = () => number;
const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)];

type Path = (string | number)[];

/** Every path in `v` (objects and arrays included, the root excluded). */
function paths(v: unknown, at: Path = [], out: Path[] = []): Path[] {
  if (v && typeof v === 'object') {
    for (const [k, c] of Object.entries(v)) {
      const p = [...at, Array.isArray(v) ? Number(k) : k];
      out.push(p);
      paths(c, p, out);
    }
  }
  return out;
}

const GARBAGE: readonly unknown[] = [
  null, true, false, 0, -1, -4, 1, 3, 2 ** 31, 2 ** 32, 2 ** 53, 1e300, -1e300, 0.5, NaN, Infinity, -Infinity,
  '', 'x', '12', '-1', '../../../etc/passwd', 'http://example.com/x', '/abs', 'f32', 'i32', 'bool', 'state', 'x', 'weights', 'zeros',
  [], [1], [-1], [0], [2 ** 40], [1, 2, 3], ['a'], [[[]]], {}, { a: 1 }, { a: { b: [1, { c: null }] } }, { __proto__: 1 },
];

/** One random change to `m` at a random path. */
function mutate(rng: Rng, m: Record<string, unknown>): string {
  const all = paths(m);
  // The memory plan and the schedule are informational and hold most of the paths: aim mostly elsewhere.
  const used = all.filter((q) => !q.includes('buffers') && !(q.includes('schedule') && q.length > 4));
  const p = pick(rng, rng() < 0.9 ? used : all);
  let parent: Record<string | number, unknown> = m;
  for (const k of p.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
  const key = p[p.length - 1];
  const old = parent[key];
  const arena = (): number => {
    // The arena of the entry the path is in, for offsets just past its end.
    const e = p[0] === 'entries' ? (m.entries as Record<string, { arenaBytes?: unknown }>)[p[1] as string] : undefined;
    return typeof e?.arenaBytes === 'number' ? e.arenaBytes : 1024;
  };
  const r = rng();
  let what: string;
  if (r < 0.15) {
    if (Array.isArray(parent) && typeof key === 'number') parent.splice(key, 1);
    else delete parent[key];
    what = 'delete';
  } else if (r < 0.45) {
    parent[key] = structuredClone(pick(rng, GARBAGE));
    what = `= ${String(JSON.stringify(parent[key]))}`;
  } else if (typeof old === 'number' && r < 0.75) {
    const v = pick(rng, [old + 1, old - 1, old + 4, old - 4, old * 2, Math.floor(old / 2), -old, 0, arena(), arena() - 4, arena() + 4, old + arena()]);
    parent[key] = v;
    what = `${old} -> ${v}`;
  } else if (Array.isArray(old) && old.every((d) => typeof d === 'number') && r < 0.75) {
    const s = [...(old as number[])];
    const c = rng();
    if (c < 0.3 && s.length) s[Math.floor(rng() * s.length)] += pick(rng, [1, -1, 7]);
    else if (c < 0.5) s.push(pick(rng, [1, 2, 3]));
    else if (c < 0.7) s.pop();
    else if (c < 0.85) s.reverse();
    else s.unshift(2);
    parent[key] = s;
    what = `[${old.join(',')}] -> [${s.join(',')}]`;
  } else if (typeof old === 'string' && r < 0.75) {
    const v = pick(rng, [`${old}x`, old.slice(1), old.toUpperCase(), '', 'predict', 'train_step', 'loss', 'output']);
    parent[key] = v;
    what = `'${old}' -> '${v}'`;
  } else {
    // Swap with another value of the manifest (a shape for an offset, a list for an object, ...).
    const q = pick(rng, all);
    let v: unknown = m;
    for (const k of q) v = (v as Record<string | number, unknown>)?.[k];
    parent[key] = structuredClone(v);
    what = `<- ${q.join('.')}`;
  }
  return `${p.join('.')} ${what}`;
}

/** The outcome of loading the artifact with `over` replacing some of its files (and using it). */
async function attempt(over: ReadonlyMap<string, Uint8Array>, rng: Rng): Promise<'loaded' | 'refused'> {
  const readFile = async (f: string) => {
    const b = over.get(f) ?? files.get(f);
    if (!b) throw new Error(`no such file: ${f}`);
    return b;
  };
  let model;
  try {
    model = await loadArtifact('fuzz:/', { backend: 'wasm', readFile });
  } catch (e) {
    if (e instanceof ArtifactError || e instanceof SafetensorsError) return 'refused';
    throw e;
  }
  // A clean load must run, or refuse a call by name.
  try {
    const n = 1 + Math.floor(rng() * 2 * B);
    const x = Float32Array.from({ length: n * 5 }, () => rng() * 2 - 1);
    await model.predict(x).catch((e: unknown) => {
      if (!(e instanceof ArtifactError)) throw e;
    });
    await model.trainStep(x.subarray(0, Math.min(n, B) * 5), Int32Array.from({ length: Math.min(n, B) }, (_, i) => i % 3)).catch((e: unknown) => {
      if (!(e instanceof ArtifactError)) throw e;
    });
    await model.getWeights().catch((e: unknown) => {
      if (!(e instanceof ArtifactError)) throw e;
    });
  } finally {
    model.dispose();
  }
  return 'loaded';
}

const enc = new TextEncoder();

/** Safetensors bytes with the JSON header replaced (the header length rewritten to match). */
function withHeader(bytes: Uint8Array, edit: (h: Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>) => void): Uint8Array {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const h = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>;
  edit(h);
  const json = enc.encode(JSON.stringify(h));
  const out = new Uint8Array(8 + json.length + bytes.length - 8 - n);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(bytes.subarray(8 + n), 8 + json.length);
  return out;
}

/** One random damage to the weights file. */
function damageWeights(rng: Rng, w: Uint8Array): { bytes: Uint8Array; what: string } {
  const n = Number(new DataView(w.buffer, w.byteOffset).getBigUint64(0, true));
  const r = rng();
  const tensorOf = (h: Record<string, unknown>) => pick(rng, Object.keys(h).filter((k) => k !== '__metadata__'));
  if (r < 0.15) {
    const len = Math.floor(rng() * w.length);
    return { bytes: w.slice(0, len), what: `truncated to ${len}` };
  }
  if (r < 0.3) {
    const b = w.slice();
    const i = Math.floor(rng() * 8);
    b[i] ^= 1 << Math.floor(rng() * 8);
    return { bytes: b, what: `header length byte ${i} flipped` };
  }
  if (r < 0.5) {
    const b = w.slice();
    const i = 8 + Math.floor(rng() * n);
    b[i] = pick(rng, [b[i] ^ (1 << Math.floor(rng() * 8)), 0x22, 0x7b, 0x5d, 0x30, 0x2d, 0x00, 0xff]);
    return { bytes: b, what: `JSON byte ${i} changed` };
  }
  if (r < 0.6) {
    const b = w.slice();
    const i = 8 + n + Math.floor(rng() * (w.length - 8 - n));
    b[i] ^= 0xff;
    return { bytes: b, what: `data byte ${i} flipped` };
  }
  let what = '';
  const bytes = withHeader(w, (h) => {
    const t = tensorOf(h);
    const e = h[t];
    const c = rng();
    if (c < 0.25) {
      e.dtype = pick(rng, ['F33', 'U8', 'I64', 'F64', 'F16', 'BF16', 'I32', '', 'f32']);
      what = `${t}.dtype = ${e.dtype}`;
    } else if (c < 0.5) {
      const end = w.length - 8 - n;
      e.data_offsets = pick(rng, [[end, end + 4], [e.data_offsets[0], end + 4], [e.data_offsets[0] + 4, e.data_offsets[1] + 4], [-4, e.data_offsets[1]], [e.data_offsets[1], e.data_offsets[0]], [0], [2 ** 53, 2 ** 53 + 4]]);
      what = `${t}.data_offsets = ${JSON.stringify(e.data_offsets)}`;
    } else if (c < 0.75) {
      e.shape = pick(rng, [[...e.shape, 1], [...e.shape].reverse(), e.shape.slice(1), [e.shape.reduce((a, d) => a * d, 1)], [-1], [1.5], [2 ** 40]]);
      // Keep the byte span consistent half the time, so the shape check (not the span check) must catch it.
      if (rng() < 0.5 && e.shape.every((d) => Number.isInteger(d) && d >= 0)) e.data_offsets = [e.data_offsets[0], e.data_offsets[0] + 4 * e.shape.reduce((a, d) => a * d, 1)];
      what = `${t}.shape = ${JSON.stringify(e.shape)}`;
    } else if (c < 0.85) {
      delete h[t];
      what = `${t} deleted`;
    } else {
      (h as Record<string, unknown>)[pick(rng, [t, '__metadata__'])] = structuredClone(pick(rng, GARBAGE));
      what = `garbage header entry`;
    }
  });
  return { bytes, what };
}

describe('the artifact loader refuses damaged input by name', () => {
  it(`${MANIFEST_CASES} mutated manifests and ${WEIGHTS_CASES} damaged weights files: a clean load or an ArtifactError/SafetensorsError`, async () => {
    const rng = mulberry32(SEED);
    const failures: string[] = [];
    const tally = { manifest: { loaded: 0, refused: 0 }, weights: { loaded: 0, refused: 0 } };
    // The undamaged artifact loads and runs.
    expect(await attempt(new Map(), rng)).toBe('loaded');
    for (let i = 0; i < MANIFEST_CASES; i++) {
      const m = structuredClone(manifest) as unknown as Record<string, unknown>;
      const muts = [mutate(rng, m)];
      if (rng() < 0.25) muts.push(mutate(rng, m));
      const what = `seed ${SEED}, manifest case ${i}: ${muts.join('; ')}`;
      const r = await attempt(new Map([['manifest.json', enc.encode(JSON.stringify(m))]]), rng).catch((e: unknown) => {
        failures.push(`${what}: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
        return null;
      });
      if (r) tally.manifest[r]++;
    }
    const w = files.get(manifest.weightsFile)!;
    for (let i = 0; i < WEIGHTS_CASES; i++) {
      const { bytes, what: d } = damageWeights(rng, w);
      const what = `seed ${SEED}, weights case ${i}: ${d}`;
      const r = await attempt(new Map([[manifest.weightsFile, bytes]]), rng).catch((e: unknown) => {
        failures.push(`${what}: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
        return null;
      });
      if (r) tally.weights[r]++;
    }
    console.log(`artifact fuzz: ${JSON.stringify(tally)}`);
    expect(failures.slice(0, 30), `${failures.length} outcomes were neither a clean load nor a named refusal`).toEqual([]);
    // Most damage is refused, but the fuzz must also reach clean loads (it mutates informational fields too).
    expect(tally.manifest.refused).toBeGreaterThan(MANIFEST_CASES / 2);
    expect(tally.manifest.loaded).toBeGreaterThan(0);
    expect(tally.weights.refused).toBeGreaterThan(WEIGHTS_CASES / 2);
  });
});
