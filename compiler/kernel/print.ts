/**
 * @file Text dump of a kernel program (`dlc ir --after fuse`, `--debug 3`): buffers with their
 * roles, then one block per kernel naming the graph ops fused into it, its grid, its reduction or
 * matmul operands and its expressions in infix form. Deterministic: the same program prints the same.
 */
import { fmtType } from '../../ir/types.ts';
import type { Expr, Kernel, LoopCopy, Program, View3 } from './types.ts';

const INFIX: Record<string, string> = { add: '+', sub: '-', mul: '*', div: '/', mod: '%', less: '<', equal: '==', and: '&&' };

export function printExpr(e: Expr, names: readonly string[]): string {
  switch (e.k) {
    case 'const':
      return e.dtype === 'bool' ? (e.value ? 'true' : 'false') : Object.is(e.value, -0) ? '-0' : String(e.value);
    case 'idx':
      return `g${e.axis}`;
    case 'ridx':
      return `r${e.axis}`;
    case 'acc':
      return 'acc';
    case 'load':
      return `${names[e.input]}[${printExpr(e.index, names)}]`;
    case 'un':
      return `${e.op}(${printExpr(e.a, names)})`;
    case 'bin': {
      const op = INFIX[e.op];
      const a = printExpr(e.a, names);
      const b = printExpr(e.b, names);
      return op ? `(${a} ${op} ${b})` : `${e.op}(${a}, ${b})`;
    }
    case 'select':
      return `select(${printExpr(e.c, names)}, ${printExpr(e.a, names)}, ${printExpr(e.b, names)})`;
    case 'cast':
      return `${e.dtype}(${printExpr(e.a, names)})`;
    case 'rand':
      return `rand[seed=${e.seed}](${printExpr(e.key, names)}, ${printExpr(e.index, names)})`;
    default:
      return e satisfies never;
  }
}

const view = (v: View3, names: readonly string[], ix: [string, string, string]) =>
  `${names[v.input]}[${[String(v.offset), ...v.strides.map((s, i) => `${ix[i]}*${s}`)].join(' + ')}]`;

export function printKernel(k: Kernel, p: Program): string {
  const names = k.inputs.map((b) => `%b${b}`);
  const sig = k.inputs.map((b) => `%b${b}: ${fmtType(p.buffers[b])}`).join(', ');
  const head = `kernel @${k.name}(${sig}) -> %b${k.output}: ${fmtType(p.buffers[k.output])}  // ${k.ops.join(', ')}`;
  switch (k.kind) {
    case 'elementwise':
      return `${head}\n    grid=(${k.shape.join(',')}) {\n  out = ${printExpr(k.expr, names)}\n}`;
    case 'reduce':
      return `${head}\n    grid=(${k.shape.join(',')}) reduce(${k.op}, ${k.rshape.map((d, i) => `r${i}<${d}`).join(', ')}) {\n  acc = ${k.op}(${printExpr(k.body, names)})\n  out = ${printExpr(k.epilogue, names)}\n}`;
    case 'matmul':
      return `${head}\n    grid=(${k.shape.join(',')}) matmul(k<${k.k}) {\n  acc = sum(${view(k.a, names, ['g0', 'g1', 'k'])} * ${view(k.b, names, ['g0', 'k', 'g2'])})\n  out = ${printExpr(k.epilogue, names)}\n}`;
    case 'pool_grad':
      return `${head}\n    grid=(${k.shape.join(',')}) pool_grad(${k.op}, window=(${k.window}), strides=(${k.strides}), padding=(${k.padding.map((q) => `(${q})`).join(',')}), dy=%b${k.inputs[1]})`;
    default:
      return k satisfies never;
  }
}

export function printProgram(p: Program): string {
  const roles = p.buffers
    .filter((b) => b.role !== 'temp')
    .map((b) => `  %b${b.id}: ${fmtType(b)} ${b.role} "${b.name}"`);
  // A loop prints as a header before its first kernel and a closing line after its last.
  const copies = (cs: readonly LoopCopy[]) => cs.map((c) => `%b${c.to}${c.toStep ? '[t]' : ''} = %b${c.from}${c.fromStep ? '[t]' : ''}`).join(', ') || '-';
  const lines: string[] = [];
  p.kernels.forEach((k, i) => {
    for (const L of p.loops) {
      if (L.start === i) lines.push(`loop t in ${L.reverse ? `${L.length - 1}..0` : `0..${L.length - 1}`} (kernels ${L.start}..${L.end - 1}) init: ${copies(L.init)}; enter: ${copies(L.enter)}; exit: ${copies(L.exit)} {`);
    }
    lines.push(printKernel(k, p));
    for (const L of p.loops) if (L.end === i + 1) lines.push(`} // loop over kernels ${L.start}..${L.end - 1}`);
  });
  const head = `program @${p.name} (${p.kernels.length} kernels, ${p.buffers.length} buffers${p.loops.length ? `, ${p.loops.length} loop${p.loops.length > 1 ? 's' : ''}` : ''})`;
  return [head, ...roles, ...lines].join('\n') + '\n';
}
