#!/usr/bin/env python3
"""Mutation test for check_optim.py: swap in plausible WRONG update rules,
schedules, clipping or weight decay, and make sure the fixtures catch each one
(check_optim.check_case reports a problem).

Run: python scripts/keras-fixtures/mutations_optim.py
Prints one line per mutation, then "N passed, M failed"; a mutation "passes"
here when the check FAILS with it (at check_optim's tolerance, rtol 1e-5 and
atol 1e-6). "[not at 1e-4]" marks a mutation that a looser comparison
(rtol = atol = 1e-4, the issue's tolerance for the Adam family) would miss. Lines marked (info) are variants that are
expected NOT to be caught (equivalent rules, or a feature a fixture cannot
see); they are printed for the record and not counted.
"""
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import check_optim as C  # noqa: E402


def load(case):
    with open(os.path.join(C.FIX_DIR, case + ".json")) as f:
        return json.load(f)


class patched:
    def __init__(self, obj, key, value):
        self.obj, self.key, self.value = obj, key, value

    def _get(self):
        return self.obj[self.key] if isinstance(self.obj, dict) else getattr(self.obj, self.key)

    def _set(self, v):
        if isinstance(self.obj, dict):
            self.obj[self.key] = v
        else:
            setattr(self.obj, self.key, v)

    def __enter__(self):
        self.old = self._get()
        self._set(self.value)

    def __exit__(self, *a):
        self._set(self.old)


class multi:
    def __init__(self, *ps):
        self.ps = ps

    def __enter__(self):
        for p in self.ps:
            p.__enter__()

    def __exit__(self, *a):
        for p in reversed(self.ps):
            p.__exit__(*a)


_st, f32 = C._st, C.f32

# --- wrong update rules -------------------------------------------------------


def rmsprop_eps_outside(cfg, state, n, w, g, lr, t):
    rho, eps = cfg.get("rho", 0.9), cfg.get("epsilon", 1e-7)
    ms = rho * _st(state, n + "/ms", w) + (1 - rho) * g * g
    state[n + "/ms"] = ms
    return w - lr * g / (np.sqrt(ms) + eps)


def rmsprop_not_centered(cfg, state, n, w, g, lr, t):
    return C.rmsprop({**cfg, "centered": False}, state, n, w, g, lr, t)


def rmsprop_momentum_torch(cfg, state, n, w, g, lr, t):
    """PyTorch: buf = mu*buf + g/sqrt(..); w -= lr*buf (lr outside the buffer)."""
    rho, mu, eps = cfg.get("rho", 0.9), cfg.get("momentum", 0.0), cfg.get("epsilon", 1e-7)
    ms = rho * _st(state, n + "/ms", w) + (1 - rho) * g * g
    state[n + "/ms"] = ms
    buf = mu * _st(state, n + "/mom", w) + g / np.sqrt(ms + eps)
    state[n + "/mom"] = buf
    return w - lr * buf


def adam_variant(bias_correction=True, eps_paper=False, amsgrad_off=False):
    def f(cfg, state, n, w, g, lr, t):
        b1, b2, eps = cfg.get("beta_1", 0.9), cfg.get("beta_2", 0.999), cfg.get("epsilon", 1e-7)
        m = _st(state, n + "/m", w)
        v = _st(state, n + "/v", w)
        m = m + (g - m) * (1 - b1)
        v = v + (g * g - v) * (1 - b2)
        state[n + "/m"], state[n + "/v"] = m, v
        if cfg.get("amsgrad", False) and not amsgrad_off:
            v = np.maximum(_st(state, n + "/vhat", w), v)
            state[n + "/vhat"] = v
        c1 = (1 - f32(b1) ** t) if bias_correction else 1.0
        c2 = (1 - f32(b2) ** t) if bias_correction else 1.0
        if eps_paper:  # mhat / (sqrt(vhat) + eps)
            return w - lr * (m / c1) / (np.sqrt(v / c2) + eps)
        return w - lr * math.sqrt(c2) / c1 * m / (np.sqrt(v) + eps)
    return f


def adamax_no_bias_correction(cfg, state, n, w, g, lr, t):
    b1, b2, eps = cfg.get("beta_1", 0.9), cfg.get("beta_2", 0.999), cfg.get("epsilon", 1e-7)
    m = _st(state, n + "/m", w)
    m = m + (g - m) * (1 - b1)
    u = np.maximum(b2 * _st(state, n + "/u", w), np.abs(g))
    state[n + "/m"], state[n + "/u"] = m, u
    return w - lr * m / (u + eps)


def adagrad_zero_init(cfg, state, n, w, g, lr, t):
    return C.adagrad({**cfg, "initial_accumulator_value": 0.0}, state, n, w, g, lr, t)


def nadam_simple(cfg, state, n, w, g, lr, t):
    """The common simplified Nadam (no momentum schedule):
    w -= lr * (b1*mhat + (1-b1)*g/(1-b1^t)) / (sqrt(vhat)+eps)."""
    b1, b2, eps = cfg.get("beta_1", 0.9), cfg.get("beta_2", 0.999), cfg.get("epsilon", 1e-7)
    m = _st(state, n + "/m", w)
    v = _st(state, n + "/v", w)
    m = m + (g - m) * (1 - b1)
    v = v + (g * g - v) * (1 - b2)
    state[n + "/m"], state[n + "/v"] = m, v
    mhat = b1 * m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1 ** t)
    return w - lr * mhat / (np.sqrt(v / (1 - b2 ** t)) + eps)


def nadam_product_late(cfg, state, t):
    """u_product updated with the PREVIOUS step's factor (off by one)."""
    b1 = cfg.get("beta_1", 0.9)
    if t == 1:
        state["u_product"] = b1 * (1 - 0.5 * 0.96)
    else:
        state["u_product"] = state["u_product"] * b1 * (1 - 0.5 * 0.96 ** (t - 1))


def sgd_plain_momentum(cfg, state, n, w, g, lr, t):
    return C.sgd({**cfg, "nesterov": False}, state, n, w, g, lr, t)


def sgd_momentum_lr_outside(cfg, state, n, w, g, lr, t):
    """PyTorch-style buffer: buf = mu*buf + g; w -= lr*buf (or the Nesterov form
    w -= lr*(g + mu*buf)). Equal to Keras for a constant lr."""
    mu = cfg.get("momentum", 0.0)
    if mu == 0:
        return w - lr * g
    buf = mu * _st(state, n + "/buf", w) + g
    state[n + "/buf"] = buf
    if cfg.get("nesterov", False):
        return w - lr * (g + mu * buf)
    return w - lr * buf


# --- wrong weight decay -------------------------------------------------------


def decay_coupled(w, g, cfg, lr):
    """L2 / coupled: g = g + wd*w (the decay goes through the optimizer)."""
    wd = cfg.get("weight_decay")
    if wd is None:
        return w, g
    return w, {k: g[k] + wd * w[k] for k in g}


def decay_without_lr(w, g, cfg, lr):
    wd = cfg.get("weight_decay")
    if wd is None:
        return w, g
    return {k: v - v * wd for k, v in w.items()}, g


def decay_kernels_only(w, g, cfg, lr):
    wd = cfg.get("weight_decay")
    if wd is None:
        return w, g
    return {k: (v - v * wd * lr if k.endswith("kernel") else v) for k, v in w.items()}, g


def decay_after_update():
    """Decay the UPDATED weights (w = u(w); w -= w*wd*lr) instead of before."""
    orig_updates = dict(C.UPDATES)

    def wrap(fn):
        def f(cfg, state, n, w, g, lr, t):
            w2 = fn(cfg, state, n, w, g, lr, t)
            wd = cfg.get("weight_decay")
            return w2 if wd is None else w2 - w2 * wd * lr
        return f
    return multi(patched(C, "apply_weight_decay", lambda w, g, cfg, lr: (w, g)),
                 *[patched(C.UPDATES, k, wrap(v)) for k, v in orig_updates.items()])


_decay = C.apply_weight_decay


def decay_with_initial_lr(w, g, cfg, lr):
    """Decay with the schedule's INITIAL lr instead of this step's lr."""
    lr0 = cfg["learning_rate"]
    lr0 = lr0["args"]["initial_learning_rate"] if isinstance(lr0, dict) else lr0
    return _decay(w, g, cfg, lr0)


# --- wrong clipping -----------------------------------------------------------


_clip = C.clip_gradients


def clip_norm_as_global(g, cfg):
    if cfg.get("clipnorm"):
        return _clip(g, {"global_clipnorm": cfg["clipnorm"]})
    return _clip(g, cfg)


def clip_global_as_per_variable(g, cfg):
    if cfg.get("global_clipnorm"):
        return _clip(g, {"clipnorm": cfg["global_clipnorm"]})
    return _clip(g, cfg)


def clip_none(g, cfg):
    return g


def clip_value_as_norm(g, cfg):
    if cfg.get("clipvalue"):
        return _clip(g, {"clipnorm": cfg["clipvalue"]})
    return _clip(g, cfg)


# --- wrong schedules ------------------------------------------------------------


def piecewise_exclusive(s, boundaries, values):
    """values[i] for b[i-1] <= s < b[i] (boundary step already in the next piece)."""
    for i, b in enumerate(boundaries):
        if s < b:
            return values[i]
    return values[-1]


def cosine_warmup_decays_from_initial(s, initial_learning_rate, decay_steps, alpha=0.0,
                                      warmup_target=None, warmup_steps=0):
    if warmup_target is None:
        return C.cosine_decay(s, initial_learning_rate, decay_steps, alpha)
    s = min(s, decay_steps + warmup_steps)
    if s < warmup_steps:
        return initial_learning_rate + (warmup_target - initial_learning_rate) * s / warmup_steps
    return C._cosine(s - warmup_steps, decay_steps, initial_learning_rate, alpha)


def cosine_alpha_absolute(s, initial_learning_rate, decay_steps, alpha=0.0,
                          warmup_target=None, warmup_steps=0):
    """alpha as an absolute floor lr (init-alpha)*cos + alpha instead of a fraction."""
    s = min(s, decay_steps)
    return (initial_learning_rate - alpha) * 0.5 * (1 + math.cos(math.pi * s / decay_steps)) + alpha


def exponential_always_staircase(s, initial_learning_rate, decay_steps, decay_rate, staircase=False):
    return C.exponential_decay(s, initial_learning_rate, decay_steps, decay_rate, True)


SCHED_CASES = ["sched_exponential", "sched_exponential_staircase", "sched_piecewise",
               "sched_cosine", "sched_cosine_warmup", "sched_inverse_time",
               "sched_sgd_momentum_wd"]

MUTATIONS = [
    # (label, case, patch, expected_caught)
    ("RMSprop eps outside the sqrt", "rmsprop_eps",
     patched(C.UPDATES, "RMSprop", rmsprop_eps_outside), True),
    ("RMSprop eps outside the sqrt (default eps 1e-7)", "rmsprop",
     patched(C.UPDATES, "RMSprop", rmsprop_eps_outside), True),
    ("RMSprop centered ignored", "rmsprop_centered",
     patched(C.UPDATES, "RMSprop", rmsprop_not_centered), True),
    ("RMSprop momentum with lr outside the buffer", "rmsprop_momentum",
     patched(C.UPDATES, "RMSprop", rmsprop_momentum_torch), False),
    ("Adam without bias correction", "adam",
     patched(C.UPDATES, "Adam", adam_variant(bias_correction=False)), True),
    ("Adam eps paper form mhat/(sqrt(vhat)+eps)", "adam_eps",
     patched(C.UPDATES, "Adam", adam_variant(eps_paper=True)), True),
    ("Adam eps paper form (default eps 1e-7)", "adam",
     patched(C.UPDATES, "Adam", adam_variant(eps_paper=True)), False),
    ("AMSGrad ignored", "adam_amsgrad",
     patched(C.UPDATES, "Adam", adam_variant(amsgrad_off=True)), True),
    ("Adamax without bias correction", "adamax",
     patched(C.UPDATES, "Adamax", adamax_no_bias_correction), True),
    ("Adagrad accumulator starts at 0", "adagrad",
     patched(C.UPDATES, "Adagrad", adagrad_zero_init), True),
    ("Nadam simplified (no momentum schedule)", "nadam",
     multi(patched(C.UPDATES, "Nadam", nadam_simple), patched(C.PRE_STEP, "Nadam", lambda *a: None)),
     True),
    ("Nadam u_product one step late", "nadam",
     patched(C.PRE_STEP, "Nadam", nadam_product_late), True),
    ("Nesterov as plain momentum", "sgd_nesterov",
     patched(C.UPDATES, "SGD", sgd_plain_momentum), True),
    ("SGD momentum buffer without lr (constant lr)", "sgd_momentum",
     patched(C.UPDATES, "SGD", sgd_momentum_lr_outside), False),
    ("SGD Nesterov, PyTorch form (constant lr)", "sgd_nesterov",
     patched(C.UPDATES, "SGD", sgd_momentum_lr_outside), False),
    ("SGD momentum buffer without lr, with a schedule", "sched_sgd_momentum_wd",
     patched(C.UPDATES, "SGD", sgd_momentum_lr_outside), True),
    ("AdamW with coupled decay (g += wd*w)", "adamw_wd01",
     patched(C, "apply_weight_decay", decay_coupled), True),
    ("AdamW with coupled decay, default wd 0.004", "adamw",
     patched(C, "apply_weight_decay", decay_coupled), True),
    ("AdamW without decay (wd ignored)", "adamw",
     patched(C, "DEFAULT_WEIGHT_DECAY", {}), True),
    ("Adam weight_decay coupled", "adam_weight_decay",
     patched(C, "apply_weight_decay", decay_coupled), True),
    ("SGD weight_decay coupled (L2; same as decoupled for plain SGD)", "sgd_weight_decay",
     patched(C, "apply_weight_decay", decay_coupled), False),
    ("SGD+momentum weight_decay coupled (L2)", "sched_sgd_momentum_wd",
     patched(C, "apply_weight_decay", decay_coupled), True),
    ("weight decay without lr (w -= wd*w)", "sgd_weight_decay",
     patched(C, "apply_weight_decay", decay_without_lr), True),
    ("weight decay on kernels only", "sgd_weight_decay",
     patched(C, "apply_weight_decay", decay_kernels_only), True),
    ("weight decay after the update", "adamw_wd01", decay_after_update(), True),
    ("weight decay with the initial lr, not the scheduled lr", "sched_sgd_momentum_wd",
     patched(C, "apply_weight_decay", decay_with_initial_lr), True),
    ("clipnorm as a global norm", "sgd_clipnorm",
     patched(C, "clip_gradients", clip_norm_as_global), True),
    ("clipnorm ignored (SGD)", "sgd_clipnorm", patched(C, "clip_gradients", clip_none), True),
    ("clipnorm ignored (Adam)", "adam_clipnorm", patched(C, "clip_gradients", clip_none), True),
    ("global_clipnorm per variable", "sgd_global_clipnorm",
     patched(C, "clip_gradients", clip_global_as_per_variable), True),
    ("global_clipnorm per variable (Adam)", "adam_global_clipnorm",
     patched(C, "clip_gradients", clip_global_as_per_variable), True),
    ("global_clipnorm ignored (Adam)", "adam_global_clipnorm",
     patched(C, "clip_gradients", clip_none), True),
    ("clipvalue as clipnorm", "sgd_clipvalue",
     patched(C, "clip_gradients", clip_value_as_norm), True),
    *[(f"schedule one step late (s+1): {c}", c, patched(C.SCHEDULE_STEP, "offset", 1), True)
      for c in SCHED_CASES],
    # The same, judged on losses and weights only (learning_rates not compared):
    *[(f"schedule one step late, weights only: {c}", "nolr:" + c,
       patched(C.SCHEDULE_STEP, "offset", 1), True) for c in SCHED_CASES],
    ("PiecewiseConstant boundaries exclusive", "sched_piecewise",
     patched(C.SCHEDULES, "PiecewiseConstantDecay", piecewise_exclusive), True),
    ("CosineDecay warmup: decay from initial lr", "sched_cosine_warmup",
     patched(C.SCHEDULES, "CosineDecay", cosine_warmup_decays_from_initial), True),
    ("CosineDecay alpha as absolute lr", "sched_cosine",
     patched(C.SCHEDULES, "CosineDecay", cosine_alpha_absolute), True),
    ("ExponentialDecay staircase always on", "sched_exponential",
     patched(C.SCHEDULES, "ExponentialDecay", exponential_always_staircase), True),
]


def main():
    passed = failed = 0
    for label, case, patch, expected in MUTATIONS:
        check_lr = not case.startswith("nolr:")
        case = case.removeprefix("nolr:")
        with patch:
            problems = C.check_case(load(case), check_lr=check_lr)
            loose = C.check_case(load(case), rtol=1e-4, atol=1e-4, check_lr=check_lr)
        caught = bool(problems)
        tag = "caught" if caught else "NOT CAUGHT"
        if caught and not loose:
            tag += " [not at 1e-4]"
        if expected:
            passed += caught
            failed += not caught
        else:
            tag += " (info: expected not caught)" if not caught else " (info)"
        print(f"{label:52s} {case:24s} {tag}" + (f"  ({problems[0]})" if problems else ""))
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
