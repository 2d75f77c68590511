/**
 * @file The op table: one `OpDef` per op, gathered from the family files in `ops/`.
 *
 * Its type is the mapped type `OpTable`, so an op declared in `OpParams` (types.ts) without an entry
 * here, or an entry missing its type rule, reference implementation or VJP, fails to type-check.
 */
import type { OpTable } from './opdef.ts';
import { elementwiseOps } from './ops/elementwise.ts';
import { leafOps } from './ops/leaf.ts';
import { linalgOps } from './ops/linalg.ts';
import { movementOps } from './ops/movement.ts';
import { reduceOps } from './ops/reduce.ts';
import { scanOps } from './ops/scan.ts';
import { windowOps } from './ops/window.ts';
import type { Op } from './types.ts';

export const OP_TABLE: OpTable = {
  ...leafOps,
  ...elementwiseOps,
  ...reduceOps,
  ...movementOps,
  ...linalgOps,
  ...windowOps,
  ...scanOps,
};

export const ALL_OPS = Object.keys(OP_TABLE) as Op[];
