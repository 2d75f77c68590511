/**
 * @file The pass pipeline as data: an ordered list of named steps from a model to a kernel program.
 *
 * `frontend` is the forward pass with its loss (the eval step), `autodiff` the whole train step
 * (forward, loss, gradients and optimizer update in one graph), `simplify` CSE and algebraic folds,
 * `fuse` the kernel program. Dumps (`dlc ir --after`, `--dump-after`) and timings (`--debug 1`) use
 * these names. Each graph pass is verified after it runs when `verify` is on (tests turn it on).
 */
import type { Func } from '../ir/types.ts';
import type { GraphModel as Model, StepKind } from './frontend/model.ts';
import { fuse } from './kernel/fuse.ts';
import type { MemoryPlan, PlanStats } from './kernel/plan.ts';
import { planMemory } from './kernel/plan.ts';
import type { Program } from './kernel/types.ts';
import { simplify } from './passes/simplify.ts';

export const PASS_NAMES = ['frontend', 'autodiff', 'simplify', 'fuse'] as const;
export type PassName = (typeof PASS_NAMES)[number];

export interface PassRecord {
  readonly name: PassName;
  readonly ms: number;
  readonly graph?: Func;
  readonly program?: Program;
}

export interface Compiled {
  readonly func: Func;
  readonly program: Program;
  readonly plan: MemoryPlan & { readonly stats: PlanStats; readonly aliased: number };
  readonly passes: readonly PassRecord[];
}

/**
 * Lower one step function of `model` at `batch` through every pass. For `train`, `frontend` records
 * the eval step (forward + loss) and `autodiff` the train step; for `predict`/`eval` autodiff is a
 * no-op that records the same graph.
 */
export function compileStep(model: Model, kind: StepKind, batch: number, onPass?: (r: PassRecord) => void): Compiled {
  const passes: PassRecord[] = [];
  const record = (r: PassRecord) => {
    passes.push(r);
    onPass?.(r);
  };
  let t = performance.now();
  const lap = () => {
    const now = performance.now();
    const ms = now - t;
    t = now;
    return ms;
  };
  const fwdKind: StepKind = kind === 'train' ? 'eval' : kind;
  // Build first, then take the lap: an object literal evaluates `ms` before `graph`.
  const forward = model.stepFunction(fwdKind, batch).func;
  record({ name: 'frontend', ms: lap(), graph: forward });
  const step = kind === 'train' ? model.stepFunction('train', batch).func : passes[0].graph!;
  record({ name: 'autodiff', ms: lap(), graph: step });
  const simple = simplify(step);
  record({ name: 'simplify', ms: lap(), graph: simple });
  const program = fuse(simple);
  record({ name: 'fuse', ms: lap(), program });
  // State updates of the train step are written in place over their inputs where that is safe.
  const updates = kind === 'train' ? model.stepFunction('train', batch).updates : [];
  const plan = planMemory(program, updates.map((u) => ({ output: program.outputs[u.output], input: program.inputs[u.input] })));
  return { func: simple, program, plan, passes };
}
