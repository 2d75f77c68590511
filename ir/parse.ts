/**
 * @file The IR text format, parsing side: `parseFunc` reads the text `printFunc` (print.ts) writes
 * and rebuilds the graph through `apply` and `input`, so every parsed node has passed its op's type
 * rule exactly as a built one has. Each line's declared type must equal the type the rule infers;
 * the declaration is a check, never a source of truth, except for the leaf params that the printer
 * leaves implied (`IMPLIED_PARAMS`), which are taken from it. Values must be defined before they are
 * used, each exactly once; value names in the text are only labels (`%7`, `%x`) and the graph keeps
 * none of them, which is why a printed, parsed and reprinted function is byte-identical to the first
 * print. `//` comments and blank lines are allowed anywhere. Syntax errors name a line and column;
 * errors about a node name its line and its value name.
 */
import { makeFunc } from './graph.ts';
import { apply, input } from './node.ts';
import { IRTypeError } from './opdef.ts';
import { OP_TABLE } from './optable.ts';
import { IMPLIED_PARAMS, fmtName } from './print.ts';
import type { DType, Func, InputNode, Node, Op, OpParams, Shape } from './types.ts';
import { DTYPES, fmtType, shapeEq } from './types.ts';

export class ParseError extends Error {
  override name = 'ParseError';
  constructor(
    message: string,
    readonly line: number,
    readonly col: number,
  ) {
    super(message);
  }
}

// ---- lexer ----

type TokKind = 'ident' | 'num' | 'str' | 'value' | 'global' | 'punct' | 'eof';

interface Tok {
  readonly kind: TokKind;
  /** Source text, except for 'str' (the decoded string) and 'value'/'global' (the name after the sigil). */
  readonly text: string;
  readonly line: number;
  readonly col: number;
}

const IDENT = /[A-Za-z_][A-Za-z0-9_.]*/y;
const NUMBER = /-?(?:Infinity|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)/y;
const VALUE_NAME = /[A-Za-z0-9_.]+/y;
const IDENT_CHAR = /[A-Za-z0-9_.]/;

function lex(src: string): Tok[] {
  const toks: Tok[] = [];
  let pos = 0;
  let line = 1;
  let lineStart = 0;
  const err = (msg: string, at = pos): never => {
    throw new ParseError(`line ${line}, col ${at - lineStart + 1}: ${msg}`, line, at - lineStart + 1);
  };
  const match = (re: RegExp, at: number): string | null => {
    re.lastIndex = at;
    const m = re.exec(src);
    return m ? m[0] : null;
  };
  /** A JSON string starting at `at`: its decoded text and the position after the closing quote. */
  const lexString = (at: number): [string, number] => {
    let end = at + 1;
    // An escape never swallows a line break, so an unterminated string is reported on its own line.
    while (end < src.length && src[end] !== '"' && src[end] !== '\n') end += src[end] === '\\' && src[end + 1] !== '\n' ? 2 : 1;
    if (end >= src.length || src[end] !== '"') err('unterminated string', at);
    try {
      return [JSON.parse(src.slice(at, end + 1)) as string, end + 1];
    } catch {
      return err('bad escape in string', at);
    }
  };
  while (pos < src.length) {
    const c = src[pos];
    if (c === '\n') {
      pos++;
      line++;
      lineStart = pos;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r') {
      pos++;
      continue;
    }
    if (c === '/' && src[pos + 1] === '/') {
      while (pos < src.length && src[pos] !== '\n') pos++;
      continue;
    }
    const start = pos;
    const tok = (kind: TokKind, text: string, end: number) => {
      toks.push({ kind, text, line, col: start - lineStart + 1 });
      pos = end;
    };
    if (c === '-' && src[pos + 1] === '>') {
      tok('punct', '->', pos + 2);
    } else if ('()[]{},:='.includes(c)) {
      tok('punct', c, pos + 1);
    } else if (c === '"') {
      const [text, end] = lexString(pos);
      tok('str', text, end);
    } else if (c === '@' && src[pos + 1] === '"') {
      const [text, end] = lexString(pos + 1);
      tok('global', text, end);
    } else if (c === '%' || c === '@') {
      const name = match(c === '%' ? VALUE_NAME : IDENT, pos + 1);
      if (name === null) err(c === '%' ? 'expected a value name after %' : 'expected a function name after @');
      tok(c === '%' ? 'value' : 'global', name as string, pos + 1 + (name as string).length);
    } else if (/[0-9-]/.test(c)) {
      const num = match(NUMBER, pos);
      if (num === null || IDENT_CHAR.test(src[pos + num.length] ?? '')) err('malformed number');
      tok('num', num as string, pos + (num as string).length);
    } else if (/[A-Za-z_]/.test(c)) {
      const id = match(IDENT, pos) as string;
      tok('ident', id, pos + id.length);
    } else {
      err(`unexpected character ${JSON.stringify(c)}`);
    }
  }
  toks.push({ kind: 'eof', text: 'end of input', line, col: pos - lineStart + 1 });
  return toks;
}

// ---- parser ----

/** A parsed param value before it is handed to a type rule (which validates its meaning). */
type RawValue = number | string | boolean | readonly RawValue[];

function describe(t: Tok): string {
  if (t.kind === 'eof') return 'end of input';
  if (t.kind === 'str') return JSON.stringify(t.text);
  if (t.kind === 'value') return `%${t.text}`;
  if (t.kind === 'global') return `@${t.text}`;
  return `'${t.text}'`;
}

class Parser {
  private i = 0;
  constructor(private readonly toks: readonly Tok[]) {}

  peek(): Tok {
    return this.toks[this.i];
  }

  /** The line of the last token consumed. */
  prevLine(): number {
    return this.toks[Math.max(0, this.i - 1)].line;
  }

  next(): Tok {
    const t = this.toks[this.i];
    if (t.kind !== 'eof') this.i++;
    return t;
  }

  error(msg: string, t: Tok = this.peek()): never {
    throw new ParseError(`line ${t.line}, col ${t.col}: ${msg}`, t.line, t.col);
  }

  isPunct(text: string): boolean {
    const t = this.peek();
    return t.kind === 'punct' && t.text === text;
  }

  expect(text: string): Tok {
    if (!this.isPunct(text)) this.error(`expected '${text}' but found ${describe(this.peek())}`);
    return this.next();
  }

  expectKind(kind: TokKind, what: string): Tok {
    if (this.peek().kind !== kind) this.error(`expected ${what} but found ${describe(this.peek())}`);
    return this.next();
  }

  /** A comma-separated list up to (and consuming) `close`; `item` parses one element. */
  list(close: string, item: () => void): void {
    if (this.isPunct(close)) {
      this.next();
      return;
    }
    for (;;) {
      item();
      if (this.isPunct(',')) {
        this.next();
        continue;
      }
      if (!this.isPunct(close)) this.error(`expected ',' or '${close}' but found ${describe(this.peek())}`);
      this.next();
      return;
    }
  }

  /** An input, output or function name: a bare identifier or a quoted string. */
  name(what: string): string {
    const t = this.peek();
    if (t.kind === 'ident' || t.kind === 'str') return this.next().text;
    return this.error(`expected ${what} but found ${describe(t)}`);
  }

  dim(): number {
    const t = this.expectKind('num', 'a dimension');
    const d = Number(t.text);
    if (!Number.isInteger(d) || d < 0) this.error(`dimension ${t.text} is not a non-negative integer`, t);
    return d + 0; // normalise -0
  }

  type(): { dtype: DType; shape: Shape } {
    const t = this.expectKind('ident', 'a type such as f32[2,3]');
    if (!(DTYPES as readonly string[]).includes(t.text)) this.error(`unknown dtype '${t.text}' (expected ${DTYPES.join(', ')})`, t);
    this.expect('[');
    const shape: number[] = [];
    this.list(']', () => shape.push(this.dim()));
    return { dtype: t.text as DType, shape: Object.freeze(shape) };
  }

  paramValue(): RawValue {
    const t = this.peek();
    if (t.kind === 'num') {
      this.next();
      return Number(t.text);
    }
    if (t.kind === 'str') return this.next().text;
    if (t.kind === 'ident') {
      this.next();
      if (t.text === 'true' || t.text === 'false') return t.text === 'true';
      if (t.text === 'NaN') return NaN;
      if (t.text === 'Infinity') return Infinity;
      return t.text;
    }
    if (this.isPunct('(')) {
      this.next();
      // `()` is the empty number list: the printer never writes an empty list inside another one.
      const items: RawValue[] = [];
      this.list(')', () => items.push(this.paramValue()));
      return Object.freeze(items);
    }
    return this.error(`expected a param value but found ${describe(t)}`);
  }

  params(): Record<string, RawValue> {
    const out: Record<string, RawValue> = {};
    this.expect('[');
    this.list(']', () => {
      const kt = this.peek();
      const key = this.name('a param name');
      if (Object.hasOwn(out, key)) this.error(`param '${key}' given twice`, kt);
      this.expect('=');
      out[key] = this.paramValue();
    });
    return out;
  }

  /** Value references that must start on `line` (a new line starts the next statement). */
  operands(line: number): Tok[] {
    const refs: Tok[] = [];
    if (this.peek().kind !== 'value' || this.peek().line !== line) return refs;
    for (;;) {
      refs.push(this.expectKind('value', 'a value such as %3'));
      if (!this.isPunct(',')) return refs;
      this.next();
    }
  }

  atEnd(): void {
    if (this.peek().kind !== 'eof') this.error(`expected end of input after '}' but found ${describe(this.peek())}`);
  }
}

export function parseFunc(text: string): Func {
  const p = new Parser(lex(text));
  const f = parseOne(p);
  p.atEnd();
  return f;
}

/** One function from `func` to its closing brace; a scan's nested body is parsed by a recursive call. */
function parseOne(p: Parser): Func {
  const defs = new Map<string, { node: Node; line: number }>();
  // Checked when the name is read, so a redefinition is reported before anything else on its line.
  const fresh = (t: Tok) => {
    const prev = defs.get(t.text);
    if (prev) p.error(`%${t.text} is already defined on line ${prev.line}`, t);
  };
  const define = (t: Tok, node: Node) => defs.set(t.text, { node, line: t.line });
  const use = (t: Tok): Node => {
    const d = defs.get(t.text);
    if (!d) return p.error(`undefined value %${t.text}`, t);
    return d.node;
  };
  const nodeError = (t: Tok, msg: string): never => {
    throw new ParseError(`line ${t.line}, %${t.text}: ${msg}`, t.line, t.col);
  };

  const kw = p.expectKind('ident', "'func'");
  if (kw.text !== 'func') p.error(`expected 'func' but found ${describe(kw)}`, kw);
  const fname = p.expectKind('global', 'a function name such as @f').text;

  // signature
  const inputs: InputNode[] = [];
  const inputNames = new Map<string, number>();
  p.expect('(');
  p.list(')', () => {
    const v = p.expectKind('value', 'an input such as %0');
    fresh(v);
    const nt = p.peek();
    const name = p.name('the input name');
    p.expect(':');
    const t = p.type();
    const prev = inputNames.get(name);
    if (prev !== undefined) p.error(`input name ${JSON.stringify(name)} is already used by input ${prev}`, nt);
    inputNames.set(name, inputs.length);
    const n = input(name, t.dtype, t.shape) as InputNode;
    define(v, n);
    inputs.push(n);
  });
  p.expect('->');
  const results: { name: string; type: { dtype: DType; shape: Shape } }[] = [];
  p.expect('(');
  p.list(')', () => {
    const tok = p.peek();
    const name = p.name('an output name');
    if (results.some((r) => r.name === name)) p.error(`output name ${JSON.stringify(name)} is used twice`, tok);
    p.expect(':');
    results.push({ name, type: p.type() });
  });
  p.expect('{');

  // body
  for (;;) {
    const t = p.peek();
    // Statements are line-oriented (operand lists end at the line's end), so each must start a line.
    if (t.line === p.prevLine() && t.kind !== 'eof') p.error(`expected a new line but found ${describe(t)}`);
    if (t.kind === 'ident' && t.text === 'return') break;
    const v = p.expectKind('value', "a definition such as '%3: f32[2] = ...' or 'return'");
    fresh(v);
    p.expect(':');
    const declared = p.type();
    p.expect('=');
    const opTok = p.expectKind('ident', 'an op name');
    const op = opTok.text;
    if (!Object.hasOwn(OP_TABLE, op)) p.error(`unknown op '${op}'`, opTok);
    if (op === 'input') nodeError(v, 'inputs are declared in the function signature, not in the body');
    const params: Record<string, RawValue> = p.isPunct('[') ? p.params() : {};
    const implied = IMPLIED_PARAMS[op as Op] ?? [];
    for (const k of implied) {
      if (Object.hasOwn(params, k)) continue;
      params[k] = k === 'dtype' ? declared.dtype : declared.shape;
    }
    // Operands must start on the line the op (or its params) ends on; the next line is a new statement.
    const operands = p.operands(p.prevLine()).map(use);
    if (op === 'scan') {
      // The body follows between braces: `{` ends the line, the nested function, then `}`.
      if (!p.isPunct('{') || p.peek().line !== p.prevLine()) p.error(`expected '{' and the scan's body function but found ${describe(p.peek())}`);
      p.next();
      params.body = parseOne(p) as unknown as RawValue;
      p.expect('}');
    }
    let node: Node;
    try {
      node = apply(op as Op, operands, Object.freeze(params) as unknown as OpParams[Op]);
    } catch (e) {
      // Type rules report IRTypeError; a missing or mistyped param can also surface as a TypeError
      // from inside a rule, since params have no runtime schema beyond the rules themselves.
      if (e instanceof IRTypeError) return nodeError(v, e.message);
      return nodeError(v, `${op}: bad params (${e instanceof Error ? e.message : String(e)})`);
    }
    if (node.dtype !== declared.dtype || !shapeEq(node.shape, declared.shape)) {
      nodeError(v, `declared ${fmtType(declared)} but ${op} gives ${fmtType(node)}`);
    }
    define(v, node);
  }

  // return
  const retTok = p.next();
  const outs = p.operands(retTok.line);
  p.expect('}');
  if (outs.length !== results.length) {
    p.error(`return gives ${outs.length} values but the signature declares ${results.length} outputs`, retTok);
  }
  const outputs = outs.map((t, k) => {
    const n = use(t);
    const r = results[k];
    if (n.dtype !== r.type.dtype || !shapeEq(n.shape, r.type.shape)) {
      p.error(`output ${fmtName(r.name)} is declared ${fmtType(r.type)} but %${t.text} is ${fmtType(n)}`, t);
    }
    return n;
  });
  return makeFunc(fname, inputs, outputs, results.map((r) => r.name));
}
