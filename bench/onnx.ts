/**
 * @file A dlc model spec (bench/model-spec.ts: the layer graph and its weights, walked from the dlc
 * model) as an ONNX model, for the ONNX Runtime rows (bench/peers/ort.ts). It holds a small protobuf
 * encoder for the part of onnx.proto it writes (ModelProto, GraphProto, NodeProto, AttributeProto,
 * TensorProto, ValueInfoProto and TypeProto; field numbers from onnx/onnx.proto, IR version 8, opset
 * 17) and the translation of each layer class the CNN and ResNet examples use. No Python and no
 * protobuf library: the bench builds the model from dlc's graph in the same process that runs it.
 *
 * Invariants: the ONNX model computes the dlc model's inference function from the same weights,
 * on the same host data. Its input is dlc's, NHWC `[N, H, W, C]` with a symbolic batch `N` (one
 * model serves batch 32 and batch 1), transposed once to NCHW, the only layout ONNX's Conv and pools
 * take; conv kernels are permuted from dlc's HWIO to OIHW; a Flatten of an NCHW value first
 * transposes it back to NHWC, so the flattened order (and the next Dense kernel's rows) are dlc's.
 * Anything it cannot translate exactly (a layer class, an activation, a layout) is refused by name;
 * the ORT rows also compare their outputs with dlc's before timing.
 */
import type { LayerConfig, LayerSpec, ModelSpec, SpecWeight } from './model-spec.ts';

// ------------------------------------------------------------------------------------ protobuf

/** Builds one protobuf message; nested messages are encoded first and written as bytes. */
class Pb {
  private readonly parts: number[] = [];
  private readonly chunks: Uint8Array[] = [];
  private size = 0;

  private flush(): void {
    if (!this.parts.length) return;
    const b = Uint8Array.from(this.parts);
    this.chunks.push(b);
    this.size += b.length;
    this.parts.length = 0;
  }
  private varint(v: bigint): void {
    // int64 fields are two's complement: a negative value takes all ten bytes.
    let x = BigInt.asUintN(64, v);
    while (x >= 0x80n) {
      this.parts.push(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.parts.push(Number(x));
  }
  private tag(field: number, wire: number): void {
    this.varint(BigInt((field << 3) | wire));
  }
  int(field: number, v: number): this {
    if (!Number.isSafeInteger(v)) throw new Error(`onnx: ${v} is not an integer`);
    this.tag(field, 0);
    this.varint(BigInt(v));
    return this;
  }
  float(field: number, v: number): this {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.parts.push(...b);
    return this;
  }
  bytes(field: number, b: Uint8Array): this {
    this.tag(field, 2);
    this.varint(BigInt(b.length));
    this.flush();
    this.chunks.push(b);
    this.size += b.length;
    return this;
  }
  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }
  message(field: number, m: Pb): this {
    return this.bytes(field, m.finish());
  }
  finish(): Uint8Array {
    this.flush();
    const out = new Uint8Array(this.size);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

// onnx.proto field numbers and enum values used below.
const TENSOR_FLOAT = 1;
const ATTR = { FLOAT: 1, INT: 2, STRING: 3, INTS: 7 } as const;
const IR_VERSION = 8;
const OPSET = 17;

type Attr = { readonly name: string } & ({ readonly i: number } | { readonly ints: readonly number[] } | { readonly f: number } | { readonly s: string });

function attribute(a: Attr): Pb {
  const m = new Pb().string(1, a.name);
  if ('i' in a) m.int(3, a.i).int(20, ATTR.INT);
  else if ('ints' in a) {
    for (const v of a.ints) m.int(8, v);
    m.int(20, ATTR.INTS);
  } else if ('f' in a) m.float(2, a.f).int(20, ATTR.FLOAT);
  else m.string(4, a.s).int(20, ATTR.STRING);
  return m;
}

function tensorProto(name: string, dims: readonly number[], data: Float32Array): Pb {
  const m = new Pb();
  for (const d of dims) m.int(1, d);
  m.int(2, TENSOR_FLOAT).string(8, name);
  // raw_data is little-endian, which every machine this runs on is (typed arrays use host order).
  return m.bytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice());
}

/** A float tensor's ValueInfoProto; a string dimension is symbolic (dim_param). */
function valueInfo(name: string, dims: readonly (number | string)[]): Pb {
  const shape = new Pb();
  for (const d of dims) shape.message(1, typeof d === 'string' ? new Pb().string(2, d) : new Pb().int(1, d));
  const tensorType = new Pb().int(1, TENSOR_FLOAT).message(2, shape);
  return new Pb().string(1, name).message(2, new Pb().message(1, tensorType));
}

// ------------------------------------------------------------------------------------ the graph

/** A value in the ONNX graph: its name, and whether a rank-4 value is held NCHW (dlc's are NHWC). */
interface Value {
  readonly name: string;
  readonly nchw: boolean;
  /** dlc's per-sample shape (no batch axis), in dlc's layout. */
  readonly shape: readonly number[];
}

/** Elementwise activations with an ONNX op of the same definition. */
const ELEMENTWISE: Record<string, string> = { relu: 'Relu', sigmoid: 'Sigmoid', tanh: 'Tanh', softplus: 'Softplus', softsign: 'Softsign' };

class GraphBuilder {
  readonly nodes: Pb[] = [];
  readonly initializers: Pb[] = [];
  private n = 0;

  fresh(hint: string): string {
    return `${hint}_${this.n++}`;
  }
  node(op: string, inputs: readonly string[], outHint: string, attrs: readonly Attr[] = []): string {
    const out = this.fresh(outHint);
    const m = new Pb();
    for (const i of inputs) m.string(1, i);
    m.string(2, out).string(3, `${op}_${this.n}`).string(4, op);
    for (const a of attrs) m.message(5, attribute(a));
    this.nodes.push(m);
    return out;
  }
  init(name: string, dims: readonly number[], data: Float32Array): string {
    this.initializers.push(tensorProto(name, dims, data));
    return name;
  }
}

/** HWIO [kh, kw, ci, co] -> OIHW [co, ci, kh, kw]. */
function hwioToOihw(w: SpecWeight): Float32Array {
  const [kh, kw, ci, co] = w.shape;
  const out = new Float32Array(w.data.length);
  for (let a = 0; a < kh; a++)
    for (let b = 0; b < kw; b++)
      for (let c = 0; c < ci; c++) for (let o = 0; o < co; o++) out[((o * ci + c) * kh + a) * kw + b] = w.data[((a * kw + b) * ci + c) * co + o];
  return out;
}

/** Keras's 'same' pads the extra row/column at the end: ONNX's SAME_UPPER. 'valid' pads nothing. */
function padAttr(padding: 'valid' | 'same'): Attr {
  return padding === 'same' ? { name: 'auto_pad', s: 'SAME_UPPER' } : { name: 'pads', ints: [0, 0, 0, 0] };
}

/**
 * `spec` with `weights` as ONNX model bytes (input `spec.input`, NHWC with a symbolic batch;
 * output `spec.output`); throws, naming the layer, for anything it does not translate.
 */
export function exportOnnx(spec: ModelSpec, weights: readonly SpecWeight[]): { bytes: Uint8Array; input: string; output: string; nodes: number } {
  const g = new GraphBuilder();
  const byName = new Map(weights.map((w) => [w.name, w]));
  const values = new Map<string, Value>();
  const graphInputs: Pb[] = [];
  let used = 0;
  const weight = (l: LayerSpec, local: string): SpecWeight => {
    const full = l.weights.find((n) => n.slice(n.lastIndexOf('.') + 1) === local);
    const w = full === undefined ? undefined : byName.get(full);
    if (!w) throw new Error(`onnx export: ${l.config.className} '${l.name}' has no weight '${local}' (it has ${l.weights.join(', ') || 'none'})`);
    used++;
    return w;
  };
  const activation = (v: Value, act: string, where: string): Value => {
    if (act === 'linear') return v;
    if (act === 'softmax') {
      // Over dlc's last axis; only a rank-1 per-sample value has that axis last in both layouts.
      if (v.shape.length !== 1) throw new Error(`onnx export: ${where}: softmax over a rank-${v.shape.length} value is not translated`);
      return { ...v, name: g.node('Softmax', [v.name], 'softmax', [{ name: 'axis', i: -1 }]) };
    }
    if (act === 'elu') return { ...v, name: g.node('Elu', [v.name], 'elu', [{ name: 'alpha', f: 1 }]) };
    const op = ELEMENTWISE[act];
    if (!op) throw new Error(`onnx export: ${where}: activation '${act}' is not translated`);
    return { ...v, name: g.node(op, [v.name], act) };
  };

  for (const l of spec.layers) {
    const c: LayerConfig = l.config;
    const where = `${c.className} '${l.name}'`;
    if (c.className === 'InputLayer') {
      const shape = l.outputShape;
      graphInputs.push(valueInfo(l.name, ['N', ...shape]));
      // dlc's images are NHWC; ONNX's Conv and pools want NCHW: transpose once at the input.
      values.set(l.name, shape.length === 3 ? { name: g.node('Transpose', [l.name], 'nchw', [{ name: 'perm', ints: [0, 3, 1, 2] }]), nchw: true, shape } : { name: l.name, nchw: false, shape });
      continue;
    }
    const ins = l.inputs.map((n) => values.get(n) ?? (() => { throw new Error(`onnx export: '${l.name}' reads '${n}', which is not built yet`); })());
    const x = ins[0];
    const needNchw = () => {
      if (!x.nchw) throw new Error(`onnx export: ${where}: expects an image (NHWC in dlc), got a value of shape [${x.shape.join(', ')}]`);
    };
    let out: Value;
    switch (c.className) {
      case 'Conv2D': {
        needNchw();
        const k = weight(l, 'kernel');
        const [kh, kw, ci, co] = k.shape;
        const kName = g.init(`${l.name}.kernel`, [co, ci, kh, kw], hwioToOihw(k));
        const inputs = [x.name, kName];
        if (c.useBias) inputs.push(g.init(`${l.name}.bias`, [co], weight(l, 'bias').data));
        const y = g.node('Conv', inputs, l.name, [{ name: 'kernel_shape', ints: [kh, kw] }, { name: 'strides', ints: c.strides }, { name: 'dilations', ints: c.dilation }, padAttr(c.padding)]);
        out = activation({ name: y, nchw: true, shape: l.outputShape }, c.activation, where);
        break;
      }
      case 'MaxPooling2D':
      case 'AveragePooling2D': {
        needNchw();
        // AveragePool's count_include_pad defaults to 0: padded cells are not counted, as in Keras.
        const op = c.className === 'MaxPooling2D' ? 'MaxPool' : 'AveragePool';
        out = { name: g.node(op, [x.name], l.name, [{ name: 'kernel_shape', ints: c.window }, { name: 'strides', ints: c.strides }, padAttr(c.padding)]), nchw: true, shape: l.outputShape };
        break;
      }
      case 'GlobalAveragePooling2D':
      case 'GlobalMaxPooling2D': {
        needNchw();
        const pooled = g.node(c.className === 'GlobalAveragePooling2D' ? 'GlobalAveragePool' : 'GlobalMaxPool', [x.name], l.name);
        out = { name: g.node('Flatten', [pooled], `${l.name}_flat`, [{ name: 'axis', i: 1 }]), nchw: false, shape: l.outputShape };
        break;
      }
      case 'BatchNormalization': {
        // Inference form (moving statistics), as dlc's predict; on the channel axis (NCHW axis 1).
        needNchw();
        const ch = x.shape[x.shape.length - 1];
        const gamma = c.scale ? weight(l, 'gamma').data : new Float32Array(ch).fill(1);
        const beta = c.center ? weight(l, 'beta').data : new Float32Array(ch);
        const ins4 = [x.name, g.init(`${l.name}.gamma`, [ch], gamma), g.init(`${l.name}.beta`, [ch], beta), g.init(`${l.name}.moving_mean`, [ch], weight(l, 'moving_mean').data), g.init(`${l.name}.moving_variance`, [ch], weight(l, 'moving_variance').data)];
        out = { name: g.node('BatchNormalization', ins4, l.name, [{ name: 'epsilon', f: c.epsilon }]), nchw: true, shape: l.outputShape };
        break;
      }
      case 'Activation':
        out = activation(x, c.activation, where);
        break;
      case 'Add':
        if (ins.some((v) => v.nchw !== x.nchw)) throw new Error(`onnx export: ${where}: inputs in different layouts`);
        out = { name: ins.slice(1).reduce((acc, v) => g.node('Add', [acc, v.name], l.name), x.name), nchw: x.nchw, shape: l.outputShape };
        break;
      case 'Flatten': {
        // dlc flattens NHWC (H, W, C order): transpose an NCHW value back first, so the order matches.
        const src = x.nchw ? g.node('Transpose', [x.name], `${l.name}_nhwc`, [{ name: 'perm', ints: [0, 2, 3, 1] }]) : x.name;
        out = { name: g.node('Flatten', [src], l.name, [{ name: 'axis', i: 1 }]), nchw: false, shape: l.outputShape };
        break;
      }
      case 'Dense': {
        if (x.nchw || x.shape.length !== 1) throw new Error(`onnx export: ${where}: Dense on a rank-${x.shape.length} value is not translated (only [batch, features])`);
        const k = weight(l, 'kernel');
        const kName = g.init(`${l.name}.kernel`, k.shape, k.data);
        // Gemm: A [N, in] · B [in, units] (dlc's kernel layout as it is) + C [units].
        const y = c.useBias ? g.node('Gemm', [x.name, kName, g.init(`${l.name}.bias`, [c.units], weight(l, 'bias').data)], l.name) : g.node('MatMul', [x.name, kName], l.name);
        out = activation({ name: y, nchw: false, shape: l.outputShape }, c.activation, where);
        break;
      }
      default:
        throw new Error(`onnx export: layer class ${c.className} ('${l.name}') is not translated`);
    }
    values.set(l.name, out);
  }
  if (used !== weights.length) throw new Error(`onnx export: used ${used} of the spec's ${weights.length} weights`);
  const result = values.get(spec.output);
  if (!result) throw new Error(`onnx export: no output '${spec.output}'`);
  if (result.nchw) throw new Error(`onnx export: the output '${spec.output}' is an image; only [batch, ...] outputs in dlc's layout are translated`);
  // Name the graph output after the dlc output layer with an Identity, so callers can ask for it by name.
  const outName = `${spec.output}_out`;
  const id = new Pb().string(1, result.name).string(2, outName).string(3, 'output_identity').string(4, 'Identity');
  g.nodes.push(id);

  const graph = new Pb();
  for (const n of g.nodes) graph.message(1, n);
  graph.string(2, spec.name);
  for (const t of g.initializers) graph.message(5, t);
  for (const i of graphInputs) graph.message(11, i);
  graph.message(12, valueInfo(outName, ['N', ...result.shape]));
  const model = new Pb()
    .int(1, IR_VERSION)
    .string(2, 'dlc bench (bench/onnx.ts)')
    .message(7, graph)
    .message(8, new Pb().string(1, '').int(2, OPSET));
  return { bytes: model.finish(), input: spec.input, output: outName, nodes: g.nodes.length };
}
