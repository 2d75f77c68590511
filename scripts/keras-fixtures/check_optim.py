#!/usr/bin/env python3
"""Independent check of the optimizer fixtures (test/fixtures/keras-optim/).

Run (from the repo root):

    python scripts/keras-fixtures/check_optim.py [case ...]

This imports neither Keras nor JAX: it is plain numpy in float64. For each
fixture it rebuilds the model (Dense(3, tanh) -> Dense(2), mse) with a
hand-written forward and backward pass, and replays the 5 training steps with
the update rules, clipping, weight decay and learning-rate schedules written
out below from the rules in README.md ("Optimizer fixtures"). It compares

  - the learning rate of each step with "learning_rates",
  - the loss of each step (forward pass before the update) with "losses",
  - every weight after each step with "weights_after[step]",
  - the unclipped step-1 gradient norms with "grad_norms_step1".

Prints one line per case, then "N passed, M failed". mutations_optim.py swaps
in wrong rules and checks that each one fails here.
"""

import json
import math
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX_DIR = os.path.join(ROOT, "test", "fixtures", "keras-optim")

# ---------------------------------------------------------------------------
# Model: x [B,4] -> h = tanh(x W1 + b1) -> p = h W2 + b2; loss = mean((p-y)^2)
# over all B*2 elements (Keras mse: mean over the last axis, then the sum over
# the batch divided by B).
# ---------------------------------------------------------------------------

NAMES = ["hidden.kernel", "hidden.bias", "out.kernel", "out.bias"]


def loss_and_grads(w, x, y):
    z = x @ w["hidden.kernel"] + w["hidden.bias"]
    h = np.tanh(z)
    p = h @ w["out.kernel"] + w["out.bias"]
    loss = np.mean((p - y) ** 2)
    dp = 2.0 * (p - y) / p.size
    dz = (dp @ w["out.kernel"].T) * (1.0 - h * h)
    g = {
        "out.kernel": h.T @ dp,
        "out.bias": dp.sum(0),
        "hidden.kernel": x.T @ dz,
        "hidden.bias": dz.sum(0),
    }
    return loss, g


# ---------------------------------------------------------------------------
# Learning-rate schedules: step s = optimizer.iterations BEFORE the step's
# increment (0 at the first step).
# ---------------------------------------------------------------------------


def exponential_decay(s, initial_learning_rate, decay_steps, decay_rate, staircase=False):
    p = s / decay_steps
    if staircase:
        p = math.floor(p)
    return initial_learning_rate * decay_rate ** p


def piecewise_constant_decay(s, boundaries, values):
    if s <= boundaries[0]:
        return values[0]
    for i in range(1, len(boundaries)):
        if boundaries[i - 1] < s <= boundaries[i]:
            return values[i]
    return values[-1]


def _cosine(s, decay_steps, base, alpha):
    return base * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * s / decay_steps)) + alpha)


def cosine_decay(s, initial_learning_rate, decay_steps, alpha=0.0,
                 warmup_target=None, warmup_steps=0):
    if warmup_target is None:
        return _cosine(min(s, decay_steps), decay_steps, initial_learning_rate, alpha)
    s = min(s, decay_steps + warmup_steps)
    if s < warmup_steps:
        return initial_learning_rate + (warmup_target - initial_learning_rate) * s / warmup_steps
    return _cosine(s - warmup_steps, decay_steps, warmup_target, alpha)


def inverse_time_decay(s, initial_learning_rate, decay_steps, decay_rate, staircase=False):
    p = s / decay_steps
    if staircase:
        p = math.floor(p)
    return initial_learning_rate / (1 + decay_rate * p)


SCHEDULES = {
    "ExponentialDecay": exponential_decay,
    "PiecewiseConstantDecay": piecewise_constant_decay,
    "CosineDecay": cosine_decay,
    "InverseTimeDecay": inverse_time_decay,
}

# The step number a schedule is evaluated at, from the 0-based step index
# (Keras: iterations before the increment). A hook for mutations.
SCHEDULE_STEP = {"offset": 0}

# ---------------------------------------------------------------------------
# Gradient clipping and weight decay (applied in this order, then the update).
# ---------------------------------------------------------------------------


def clip_gradients(g, cfg):
    if cfg.get("clipnorm"):
        c = cfg["clipnorm"]
        return {k: v * c / max(np.linalg.norm(v), c) for k, v in g.items()}
    if cfg.get("global_clipnorm"):
        c = cfg["global_clipnorm"]
        norm = math.sqrt(sum(float((v ** 2).sum()) for v in g.values()))
        scale = c * min(1.0 / norm, 1.0 / c)
        return {k: v * scale for k, v in g.items()}
    if cfg.get("clipvalue"):
        c = cfg["clipvalue"]
        return {k: np.clip(v, -c, c) for k, v in g.items()}
    return g


def apply_weight_decay(w, g, cfg, lr):
    """Decoupled: w = w - w*wd*lr on every trainable variable, before the
    update; the gradient is untouched. Returns (w, g)."""
    wd = cfg.get("weight_decay")
    if wd is None:
        return w, g
    return {k: v - v * wd * lr for k, v in w.items()}, g


# ---------------------------------------------------------------------------
# Update rules. Each takes (cfg, state, name, w, g, lr, t) with t = iterations+1
# and returns the new w; state is a per-case dict it may fill. Defaults are
# Keras's.
# ---------------------------------------------------------------------------


def f32(v):
    """Keras casts beta_1 / beta_2 (and Nadam's 0.96) to the variable dtype,
    float32, BEFORE raising them to the power t, while (1 - beta) in the
    moment updates is formed in Python float64. So the bias corrections use
    1 - float32(0.999)^t (1 - float32(0.999) = 9.9998713e-4, 1.3e-5 relative
    below 1e-3). Without this the f64 reference drifts from Keras by
    ~6e-6 relative per Adam step; with it the errors are float32 noise."""
    return float(np.float32(v))


def _st(state, key, shape_like, init=0.0):
    if key not in state:
        state[key] = np.full_like(shape_like, init)
    return state[key]


def sgd(cfg, state, n, w, g, lr, t):
    mu = cfg.get("momentum", 0.0)
    if mu == 0:
        return w - lr * g
    m = mu * _st(state, n + "/m", w) - lr * g
    state[n + "/m"] = m
    if cfg.get("nesterov", False):
        return w + mu * m - lr * g
    return w + m


def rmsprop(cfg, state, n, w, g, lr, t):
    rho, mu, eps = cfg.get("rho", 0.9), cfg.get("momentum", 0.0), cfg.get("epsilon", 1e-7)
    ms = rho * _st(state, n + "/ms", w) + (1 - rho) * g * g
    state[n + "/ms"] = ms
    if cfg.get("centered", False):
        mg = rho * _st(state, n + "/mg", w) + (1 - rho) * g
        state[n + "/mg"] = mg
        denom = ms - mg * mg + eps
    else:
        denom = ms + eps
    inc = lr * g / np.sqrt(denom)
    if mu > 0:
        mom = mu * _st(state, n + "/mom", w) + inc
        state[n + "/mom"] = mom
        return w - mom
    return w - inc


def adam(cfg, state, n, w, g, lr, t):
    b1, b2, eps = cfg.get("beta_1", 0.9), cfg.get("beta_2", 0.999), cfg.get("epsilon", 1e-7)
    m = _st(state, n + "/m", w)
    v = _st(state, n + "/v", w)
    m = m + (g - m) * (1 - b1)
    v = v + (g * g - v) * (1 - b2)
    state[n + "/m"], state[n + "/v"] = m, v
    if cfg.get("amsgrad", False):
        vh = np.maximum(_st(state, n + "/vhat", w), v)
        state[n + "/vhat"] = vh
        v = vh
    alpha = lr * math.sqrt(1 - f32(b2) ** t) / (1 - f32(b1) ** t)
    return w - m * alpha / (np.sqrt(v) + eps)


def adagrad(cfg, state, n, w, g, lr, t):
    eps = cfg.get("epsilon", 1e-7)
    acc = _st(state, n + "/acc", w, cfg.get("initial_accumulator_value", 0.1)) + g * g
    state[n + "/acc"] = acc
    return w - lr * g / np.sqrt(acc + eps)


def adamax(cfg, state, n, w, g, lr, t):
    b1, b2, eps = cfg.get("beta_1", 0.9), cfg.get("beta_2", 0.999), cfg.get("epsilon", 1e-7)
    m = _st(state, n + "/m", w)
    m = m + (g - m) * (1 - b1)
    u = np.maximum(b2 * _st(state, n + "/u", w), np.abs(g))
    state[n + "/m"], state[n + "/u"] = m, u
    return w - lr * m / ((1 - f32(b1) ** t) * (u + eps))


def nadam_pre_step(cfg, state, t):
    """Once per step, before the per-variable updates."""
    b1 = cfg.get("beta_1", 0.9)
    state["u_product"] = state.get("u_product", 1.0) * b1 * (1 - 0.5 * 0.96 ** t)


def nadam(cfg, state, n, w, g, lr, t):
    b1, b2, eps = cfg.get("beta_1", 0.9), cfg.get("beta_2", 0.999), cfg.get("epsilon", 1e-7)
    u_t = f32(b1) * (1 - 0.5 * f32(0.96) ** t)
    u_t1 = f32(b1) * (1 - 0.5 * f32(0.96) ** (t + 1))
    up = state["u_product"]
    up1 = up * u_t1
    m = _st(state, n + "/m", w)
    v = _st(state, n + "/v", w)
    m = m + (g - m) * (1 - b1)
    v = v + (g * g - v) * (1 - b2)
    state[n + "/m"], state[n + "/v"] = m, v
    m_hat = u_t1 * m / (1 - up1) + (1 - u_t) * g / (1 - up)
    v_hat = v / (1 - f32(b2) ** t)
    return w - lr * m_hat / (np.sqrt(v_hat) + eps)


UPDATES = {"SGD": sgd, "RMSprop": rmsprop, "Adam": adam, "AdamW": adam,
           "Adagrad": adagrad, "Adamax": adamax, "Nadam": nadam}
PRE_STEP = {"Nadam": nadam_pre_step}
DEFAULT_WEIGHT_DECAY = {"AdamW": 0.004}

# ---------------------------------------------------------------------------


def close(a, b, rtol, atol):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    err = np.abs(a - b)
    return bool(np.all(err <= atol + rtol * np.abs(b))), float(err.max()) if err.size else 0.0


def lr_at(args, step):
    lr = args.get("learning_rate", 0.01)  # Keras SGD default; every fixture passes one
    if isinstance(lr, dict):
        return SCHEDULES[lr["class"]](step + SCHEDULE_STEP["offset"], **lr["args"])
    return lr


def check_case(fx, rtol=1e-5, atol=1e-6, check_lr=True):
    x = np.asarray(fx["inputs"]["data"], np.float64).reshape(fx["inputs"]["shape"])
    y = np.asarray(fx["targets"]["data"], np.float64).reshape(fx["targets"]["shape"])
    w = {e["name"]: np.asarray(e["data"], np.float64).reshape(e["shape"]) for e in fx["weights"]}
    assert sorted(w) == sorted(NAMES)
    cls = fx["optimizer"]["class"]
    args = dict(fx["optimizer"]["args"])
    if cls in DEFAULT_WEIGHT_DECAY:
        args.setdefault("weight_decay", DEFAULT_WEIGHT_DECAY[cls])
    update = UPDATES[cls]
    state = {}
    problems = []
    worst = 0.0

    _, g0 = loss_and_grads(w, x, y)
    gn = fx["grad_norms_step1"]
    for n in NAMES:
        ok, _ = close(np.linalg.norm(g0[n]), gn["per_variable"][n], 1e-5, 1e-7)
        if not ok:
            problems.append(f"grad norm {n}")
    glob = math.sqrt(sum(float((v ** 2).sum()) for v in g0.values()))
    if not close(glob, gn["global"], 1e-5, 1e-7)[0]:
        problems.append("global grad norm")

    for step in range(fx["steps"]):
        t = step + 1
        lr = lr_at(args, step)
        if check_lr and not close(lr, fx["learning_rates"][step], 1e-6, 1e-9)[0]:
            problems.append(f"lr[{step}] {lr} vs {fx['learning_rates'][step]}")
        loss, g = loss_and_grads(w, x, y)
        ok, _ = close(loss, fx["losses"][step], rtol, atol)
        if not ok:
            problems.append(f"loss[{step}] {loss:.8g} vs {fx['losses'][step]}")
        g = clip_gradients(g, args)
        w, g = apply_weight_decay(w, g, args, lr)
        if cls in PRE_STEP:
            PRE_STEP[cls](args, state, t)
        w = {n: update(args, state, n, w[n], g[n], lr, t) for n in NAMES}
        want = fx["weights_after"][step]
        for n in NAMES:
            ok, err = close(w[n].reshape(-1), want[n], rtol, atol)
            worst = max(worst, err)
            if not ok:
                problems.append(f"step {step} {n} max err {err:.3g}")
    LAST["max_weight_err"] = worst
    return problems


LAST = {}


def main(argv):
    files = sorted(f for f in os.listdir(FIX_DIR) if f.endswith(".json"))
    wanted = set(argv)
    n = failed = 0
    for fn in files:
        with open(os.path.join(FIX_DIR, fn)) as f:
            fx = json.load(f)
        if wanted and fx["case"] not in wanted:
            continue
        n += 1
        problems = check_case(fx)
        failed += bool(problems)
        status = (f"ok (max |weight err| {LAST['max_weight_err']:.2g})" if not problems
                  else "FAIL " + "; ".join(problems[:4]))
        print(f"{fx['case']:28s} {status}")
    print(f"{n - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
