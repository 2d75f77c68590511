#!/usr/bin/env python3
"""Independent check of the loss and metric fixtures (test/fixtures/keras-losses/).

Run (from the repo root):

    python scripts/keras-fixtures/check_losses.py [case ...]

Plain numpy in float64; imports neither Keras nor JAX. Each loss is written
out below with its HAND-DERIVED gradient (no autodiff), so the check pins both
the forward formula and the backward formula the TypeScript side needs. For a
loss fixture it compares per_sample, value (the "sum_over_batch_size"
reduction, or the masked mean for ignore_class) and grad (d value / d y_pred);
for a metric fixture the per-sample values, the metric object's result and
what compile's "accuracy" resolves to. Prints one line per case, then
"N passed, M failed". mutations_losses.py swaps in wrong formulas and checks
that each one fails here.
"""

import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX_DIR = os.path.join(ROOT, "test", "fixtures", "keras-losses")
EPS = 1e-7  # keras.config.epsilon()

# ---------------------------------------------------------------------------
# Losses: fn(y_true, y_pred, **args) -> (per_sample [B], dper [B, ...], mask)
# where dper[i] = d per_sample[i] / d y_pred[i] and mask (or None) marks the
# samples that count in the reduction.
# ---------------------------------------------------------------------------


def mse(t, p):
    c = p.shape[-1]
    return np.mean((p - t) ** 2, -1), 2 * (p - t) / c, None


def mae(t, p):
    c = p.shape[-1]
    return np.mean(np.abs(p - t), -1), np.sign(p - t) / c, None


def huber(t, p, delta=1.0):
    c = p.shape[-1]
    e = p - t
    quad = np.abs(e) <= delta
    per = np.mean(np.where(quad, 0.5 * e * e, delta * np.abs(e) - 0.5 * delta * delta), -1)
    return per, np.where(quad, e, delta * np.sign(e)) / c, None


def kl_divergence(t, p):
    tc, pc = np.clip(t, EPS, 1), np.clip(p, EPS, 1)
    inside = (p >= EPS) & (p <= 1)
    return np.sum(tc * np.log(tc / pc), -1), np.where(inside, -tc / pc, 0.0), None


def log_cosh(t, p):
    c = p.shape[-1]
    x = p - t
    return np.mean(np.log(np.cosh(x)), -1), np.tanh(x) / c, None


def hinge(t, p):
    c = p.shape[-1]
    if np.all((t == 0) | (t == 1)):
        t = 2 * t - 1
    m = 1 - t * p
    return np.mean(np.maximum(m, 0), -1), np.where(m > 0, -t, 0.0) / c, None


def categorical_hinge(t, p):
    pos = np.sum(t * p, -1)
    negv = (1 - t) * p
    j = np.argmax(negv, -1)
    neg = negv[np.arange(len(j)), j]
    z = neg - pos + 1
    d = -t.copy()
    d[np.arange(len(j)), j] += (1 - t)[np.arange(len(j)), j]
    return np.maximum(z, 0), np.where((z > 0)[:, None], d, 0.0), None


def poisson(t, p):
    c = p.shape[-1]
    return np.mean(p - t * np.log(p + EPS), -1), (1 - t / (p + EPS)) / c, None


def _l2n(x):
    inv = np.minimum(1 / np.sqrt(np.sum(x * x, -1, keepdims=True)), 1 / EPS)
    return x * inv, inv


def cosine_similarity(t, p):
    nt, _ = _l2n(t)
    npd, inv = _l2n(p)
    dot = np.sum(nt * npd, -1, keepdims=True)
    return -dot[:, 0], -(nt - dot * npd) * inv, None


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _log_sigmoid(x):
    return -np.logaddexp(0, -x)


def _smooth_binary(t, ls):
    return t * (1 - ls) + 0.5 * ls


def binary_crossentropy(t, p, from_logits=False, label_smoothing=0.0):
    c = p.shape[-1]
    t = _smooth_binary(t, label_smoothing) if label_smoothing else t
    if from_logits:
        per = -t * _log_sigmoid(p) - (1 - t) * _log_sigmoid(-p)
        return np.mean(per, -1), (_sigmoid(p) - t) / c, None
    q = np.clip(p, EPS, 1 - EPS)
    per = -(t * np.log(q) + (1 - t) * np.log(1 - q))
    d = np.where((p >= EPS) & (p <= 1 - EPS), -t / q + (1 - t) / (1 - q), 0.0)
    return np.mean(per, -1), d / c, None


def _smooth_categorical(t, ls):
    return t * (1 - ls) + ls / t.shape[-1]


def _cce(t, p, from_logits):
    if from_logits:
        z = p - p.max(-1, keepdims=True)
        logsm = z - np.log(np.sum(np.exp(z), -1, keepdims=True))
        return -np.sum(t * logsm, -1), np.exp(logsm) * t.sum(-1, keepdims=True) - t
    s = p.sum(-1, keepdims=True)
    q = p / s
    inside = (q >= EPS) & (q <= 1 - EPS)
    qc = np.clip(q, EPS, 1 - EPS)
    # d/dp_j of -sum_i t_i*log(p_i/S): -t_j/p_j + sum_i(t_i)/S (only through unclipped q_i)
    tin = t * inside
    d = -tin / p + tin.sum(-1, keepdims=True) / s
    return -np.sum(t * np.log(qc), -1), d


def categorical_crossentropy(t, p, from_logits=False, label_smoothing=0.0):
    t = _smooth_categorical(t, label_smoothing) if label_smoothing else t
    per, d = _cce(t, p, from_logits)
    return per, d, None


def sparse_categorical_crossentropy(t, p, from_logits=False, ignore_class=None):
    t = np.asarray(t, np.int64)
    mask = None
    if ignore_class is not None:
        mask = t != ignore_class
        t = np.where(mask, t, 0)
    oh = np.eye(p.shape[-1])[t]
    per, d = _cce(oh, p, from_logits)
    if mask is not None:
        per = np.where(mask, per, 0.0)
        d = np.where(mask[:, None], d, 0.0)
    return per, d, mask


LOSSES = {
    "mean_squared_error": mse,
    "mean_absolute_error": mae,
    "huber": huber,
    "kl_divergence": kl_divergence,
    "log_cosh": log_cosh,
    "hinge": hinge,
    "categorical_hinge": categorical_hinge,
    "poisson": poisson,
    "cosine_similarity": cosine_similarity,
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
}


def reduce(per, dper, mask):
    """"sum_over_batch_size": sum / number of samples. A loss mask (ignore_class)
    gives the kept samples weight total/valid and the others 0, i.e.
    sum(per * mask) / sum(mask)."""
    if mask is None:
        n = per.size
        return per.sum() / n, dper / n
    valid = mask.sum()
    return (per * mask).sum() / valid, dper * mask.reshape(mask.shape + (1,) * (dper.ndim - 1)) / valid


# ---------------------------------------------------------------------------
# Metrics: fn(y_true, y_pred, **args) -> per-sample (or per-element) values.
# The metric object's result is their mean.
# ---------------------------------------------------------------------------


def sparse_categorical_accuracy(t, p):
    return (np.argmax(p, -1) == np.asarray(t).reshape(-1)).astype(float)  # first max


def categorical_accuracy(t, p):
    return (np.argmax(p, -1) == np.argmax(t, -1)).astype(float)


def binary_accuracy(t, p, threshold=0.5):
    """Element-wise, in y_true's shape ([B, 1] stays [B, 1]); strict >."""
    return ((p > threshold).astype(float) == t).astype(float)


def sparse_top_k_categorical_accuracy(t, p, k=5):
    t = np.asarray(t, np.int64).reshape(-1)
    at = p[np.arange(len(t)), t]
    rank = 1 + np.sum(p > at[:, None], -1)
    return (rank <= k).astype(float)


def top_k_categorical_accuracy(t, p, k=5):
    return sparse_top_k_categorical_accuracy(np.argmax(t, -1), p, k)


METRICS = {
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "binary_accuracy": binary_accuracy,
    "sparse_top_k_categorical_accuracy": sparse_top_k_categorical_accuracy,
    "top_k_categorical_accuracy": top_k_categorical_accuracy,
    "mean_absolute_error": lambda t, p: np.mean(np.abs(p - t), -1),
    "mean_squared_error": lambda t, p: np.mean((p - t) ** 2, -1),
}


def resolve_accuracy(t_shape, p_shape):
    """compile(metrics=["accuracy"]): binary if y_pred's last dim is 1; sparse if
    y_true has lower rank than y_pred, or last dim 1 against y_pred's > 1;
    else categorical."""
    if p_shape[-1] == 1:
        return "BinaryAccuracy"
    if len(t_shape) < len(p_shape) or (t_shape[-1] == 1 and p_shape[-1] > 1):
        return "SparseCategoricalAccuracy"
    return "CategoricalAccuracy"


# ---------------------------------------------------------------------------


def arr(e):
    return np.asarray(e["data"], np.int64 if e["dtype"] == "int32" else np.float64).reshape(e["shape"])


def close(a, b, rtol, atol):
    a, b = np.asarray(a, np.float64).reshape(-1), np.asarray(b, np.float64).reshape(-1)
    if a.shape != b.shape:
        return False, float("inf")
    err = np.abs(a - b)
    return bool(np.all(err <= atol + rtol * np.abs(b))), float(err.max()) if err.size else 0.0


def check_case(fx, rtol=1e-5, atol=1e-6):
    t, p = arr(fx["y_true"]), arr(fx["y_pred"])
    problems = []
    if fx["kind"] == "loss":
        spec = fx["loss"]
        per, dper, mask = LOSSES[spec["function"]](t, p, **spec["args"])
        value, grad = reduce(per, dper, mask)
        for label, got, want in [("per_sample", per, fx["per_sample"]),
                                 ("value", value, fx["value"]), ("grad", grad, fx["grad"])]:
            ok, err = close(got, want, rtol, atol)
            if not ok:
                problems.append(f"{label} max err {err:.3g}")
    else:
        spec = fx["metric"]
        per = METRICS[spec["function"]](t, p, **spec["args"])
        if list(per.shape) != fx["per_sample_shape"]:
            problems.append(f"per_sample shape {list(per.shape)} vs {fx['per_sample_shape']}")
        for label, got, want in [("per_sample", per, fx["per_sample"]),
                                 ("value", np.mean(per), fx["value"])]:
            ok, err = close(got, want, rtol, atol)
            if not ok:
                problems.append(f"{label} max err {err:.3g}")
        if spec.get("compile_name") == "accuracy":
            r = resolve_accuracy(fx["y_true"]["shape"], fx["y_pred"]["shape"])
            if r != spec["compile_resolves_to"]:
                problems.append(f"accuracy resolves to {r} vs {spec['compile_resolves_to']}")
    return problems


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
        print(f"{fx['case']:52s} {'ok' if not problems else 'FAIL ' + '; '.join(problems)}")
    print(f"{n - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
