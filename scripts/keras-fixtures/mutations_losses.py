#!/usr/bin/env python3
"""Mutation test for check_losses.py: swap in plausible WRONG loss / metric
formulas and make sure the fixtures catch each one.

Run: python scripts/keras-fixtures/mutations_losses.py
Prints one line per mutation, then "N passed, M failed"; a mutation "passes"
here when the check FAILS with it. Lines marked (info) are expected NOT to be
caught and are not counted.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import check_losses as C  # noqa: E402
from mutations_optim import patched  # noqa: E402


def load(case):
    with open(os.path.join(C.FIX_DIR, case + ".json")) as f:
        return json.load(f)


def huber_linear_no_offset(t, p, delta=1.0):
    c = p.shape[-1]
    e = p - t
    quad = np.abs(e) <= delta
    per = np.mean(np.where(quad, 0.5 * e * e, delta * np.abs(e)), -1)
    return per, np.where(quad, e, delta * np.sign(e)) / c, None


def huber_swapped(t, p, delta=1.0):
    c = p.shape[-1]
    e = p - t
    quad = np.abs(e) > delta
    per = np.mean(np.where(quad, 0.5 * e * e, delta * np.abs(e) - 0.5 * delta * delta), -1)
    return per, np.where(quad, e, delta * np.sign(e)) / c, None


def huber_delta_ignored(t, p, delta=1.0):
    return C.huber(t, p, 1.0)


def bce_smoothing_on_pred(t, p, from_logits=False, label_smoothing=0.0):
    """Smoothing applied to y_pred (wrong side) instead of y_true."""
    if label_smoothing and not from_logits:
        ls = label_smoothing
        per, d, m = C.binary_crossentropy(t, p * (1 - ls) + 0.5 * ls)
        return per, d * (1 - ls), m
    return C.binary_crossentropy(t, p, from_logits, label_smoothing)


def bce_smoothing_full(t, p, from_logits=False, label_smoothing=0.0):
    """t*(1-ls) + ls (towards 1) instead of + 0.5*ls."""
    if label_smoothing:
        t = t * (1 - label_smoothing) + label_smoothing
    return C.binary_crossentropy(t, p, from_logits, 0.0)


def bce_smoothing_ignored_for_logits(t, p, from_logits=False, label_smoothing=0.0):
    return C.binary_crossentropy(t, p, from_logits, 0.0 if from_logits else label_smoothing)


def cce_smoothing_on_pred(t, p, from_logits=False, label_smoothing=0.0):
    if label_smoothing and not from_logits:
        ls, k = label_smoothing, p.shape[-1]
        q = p * (1 - ls) + ls / k * p.sum(-1, keepdims=True)
        per, d, m = C.categorical_crossentropy(t, q)
        # chain rule through q: dq_i/dp_j = (1-ls) delta_ij + ls/k
        d = d * (1 - ls) + (ls / k) * d.sum(-1, keepdims=True)
        return per, d, m
    return C.categorical_crossentropy(t, p, from_logits, label_smoothing)


def cce_smoothing_c_minus_1(t, p, from_logits=False, label_smoothing=0.0):
    """1 - ls for the target, ls/(C-1) for the others."""
    if label_smoothing:
        k = t.shape[-1]
        t = t * (1 - label_smoothing) + (1 - t) * label_smoothing / (k - 1)
    return C.categorical_crossentropy(t, p, from_logits, 0.0)


def cce_no_renormalise(t, p, from_logits=False, label_smoothing=0.0):
    if from_logits:
        return C.categorical_crossentropy(t, p, True, label_smoothing)
    if label_smoothing:
        t = C._smooth_categorical(t, label_smoothing)
    q = np.clip(p, C.EPS, 1 - C.EPS)
    return -np.sum(t * np.log(q), -1), -t / q, None


def scce_no_renormalise(t, p, from_logits=False, ignore_class=None):
    if from_logits:
        return C.sparse_categorical_crossentropy(t, p, True, ignore_class)
    oh = np.eye(p.shape[-1])[np.asarray(t, np.int64)]
    return cce_no_renormalise(oh, p)


_reduce = C.reduce


def reduce_ignore_mask(per, dper, mask):
    return _reduce(per, dper, None)


def kl_no_clip(t, p):
    with np.errstate(divide="ignore", invalid="ignore"):
        per = np.sum(np.where(t > 0, t * np.log(t / p), 0.0), -1)
    return per, -t / p, None


def hinge_no_conversion(t, p):
    c = p.shape[-1]
    m = 1 - t * p
    return np.mean(np.maximum(m, 0), -1), np.where(m > 0, -t, 0.0) / c, None


def cat_hinge_neg_sum(t, p):
    pos = np.sum(t * p, -1)
    neg = np.sum((1 - t) * p, -1)
    z = neg - pos + 1
    return np.maximum(z, 0), np.where((z > 0)[:, None], (1 - t) - t, 0.0), None


def cosine_positive(t, p):
    per, d, m = C.cosine_similarity(t, p)
    return -per, -d, m


def log_cosh_grad_linear(t, p):
    per, _, m = C.log_cosh(t, p)
    return per, (p - t) / p.shape[-1], m


def mse_sum_features(t, p):
    return np.sum((p - t) ** 2, -1), 2 * (p - t), None


def cce_logits_grad_no_sum_t(t, p, from_logits=False, label_smoothing=0.0):
    """softmax(x) - t (assumes sum(t) == 1; holds for one-hot and for Keras's
    smoothed labels, so NOT expected to be caught)."""
    per, d, m = C.categorical_crossentropy(t, p, from_logits, label_smoothing)
    if from_logits:
        tt = C._smooth_categorical(t, label_smoothing) if label_smoothing else t
        z = np.exp(p - p.max(-1, keepdims=True))
        d = z / z.sum(-1, keepdims=True) - tt
    return per, d, m


def binary_accuracy_ge(t, p, threshold=0.5):
    return ((p >= threshold).astype(float) == t).astype(float)


def argmax_last(p):
    return p.shape[-1] - 1 - np.argmax(p[..., ::-1], -1)


def categorical_accuracy_last_max(t, p):
    return (argmax_last(p) == np.argmax(t, -1)).astype(float)


def sparse_accuracy_last_max(t, p):
    return (argmax_last(p) == np.asarray(t).reshape(-1)).astype(float)


def sparse_top_k_by_sort(t, p, k=5):
    """Take the first k indices of a stable descending sort (ties by index)."""
    t = np.asarray(t, np.int64).reshape(-1)
    top = np.argsort(-p, -1, kind="stable")[:, :k]
    return np.any(top == t[:, None], -1).astype(float)


def resolve_always_categorical(t_shape, p_shape):
    return "CategoricalAccuracy"


L, M = C.LOSSES, C.METRICS
MUTATIONS = [
    ("huber: linear branch without -0.5*delta^2", "huber",
     patched(L, "huber", huber_linear_no_offset), True),
    ("huber: branches swapped", "huber", patched(L, "huber", huber_swapped), True),
    ("huber: branches swapped (delta 0.5)", "huber_delta_0_5",
     patched(L, "huber", huber_swapped), True),
    ("huber: delta ignored", "huber_delta_0_5", patched(L, "huber", huber_delta_ignored), True),
    ("BCE label smoothing on y_pred", "binary_crossentropy_label_smoothing",
     patched(L, "binary_crossentropy", bce_smoothing_on_pred), True),
    ("BCE smoothing t*(1-ls)+ls", "binary_crossentropy_label_smoothing",
     patched(L, "binary_crossentropy", bce_smoothing_full), True),
    ("BCE smoothing ignored with from_logits", "binary_crossentropy_logits_label_smoothing",
     patched(L, "binary_crossentropy", bce_smoothing_ignored_for_logits), True),
    ("CCE label smoothing on y_pred", "categorical_crossentropy_label_smoothing",
     patched(L, "categorical_crossentropy", cce_smoothing_on_pred), True),
    ("CCE smoothing ls/(C-1) for non-targets", "categorical_crossentropy_label_smoothing",
     patched(L, "categorical_crossentropy", cce_smoothing_c_minus_1), True),
    ("CCE smoothing ls/(C-1) (logits)", "categorical_crossentropy_logits_label_smoothing",
     patched(L, "categorical_crossentropy", cce_smoothing_c_minus_1), True),
    ("CCE without renormalising y_pred", "categorical_crossentropy_unnormalized",
     patched(L, "categorical_crossentropy", cce_no_renormalise), True),
    ("CCE without renormalising (softmax rows; grad differs)", "categorical_crossentropy",
     patched(L, "categorical_crossentropy", cce_no_renormalise), True),
    ("SCCE without renormalising y_pred", "sparse_categorical_crossentropy_unnormalized",
     patched(L, "sparse_categorical_crossentropy", scce_no_renormalise), True),
    ("CCE logits grad softmax - t (sum(t) = 1 here)", "categorical_crossentropy_logits_label_smoothing",
     patched(L, "categorical_crossentropy", cce_logits_grad_no_sum_t), False),
    ("ignore_class: mean over all samples", "sparse_categorical_crossentropy_ignore_class",
     patched(C, "reduce", reduce_ignore_mask), True),
    ("ignore_class: mean over all samples (logits)", "sparse_categorical_crossentropy_logits_ignore_class",
     patched(C, "reduce", reduce_ignore_mask), True),
    ("KL without clipping y_true (0*log0 = 0)", "kl_divergence",
     patched(L, "kl_divergence", kl_no_clip), False),
    ("hinge without 0/1 -> -1/+1 conversion", "hinge",
     patched(L, "hinge", hinge_no_conversion), True),
    ("categorical_hinge neg = sum instead of max", "categorical_hinge",
     patched(L, "categorical_hinge", cat_hinge_neg_sum), True),
    ("cosine_similarity with + sign", "cosine_similarity",
     patched(L, "cosine_similarity", cosine_positive), True),
    ("log_cosh gradient x instead of tanh(x)", "log_cosh",
     patched(L, "log_cosh", log_cosh_grad_linear), True),
    ("mse: sum over features", "mean_squared_error",
     patched(L, "mean_squared_error", mse_sum_features), True),
    ("binary_accuracy with >= threshold", "metric_accuracy_binary",
     patched(M, "binary_accuracy", binary_accuracy_ge), True),
    ("binary_accuracy with >= threshold (multi-label)", "metric_binary_accuracy",
     patched(M, "binary_accuracy", binary_accuracy_ge), True),
    ("categorical_accuracy: last maximum on ties", "metric_accuracy_onehot",
     patched(M, "categorical_accuracy", categorical_accuracy_last_max), True),
    ("sparse_categorical_accuracy: last maximum on ties", "metric_accuracy_sparse",
     patched(M, "sparse_categorical_accuracy", sparse_accuracy_last_max), True),
    ("sparse top-k: first k of a sort (ties by index)", "metric_sparse_top_k",
     patched(M, "sparse_top_k_categorical_accuracy", sparse_top_k_by_sort), True),
    ("compile 'accuracy' always categorical", "metric_accuracy_sparse",
     patched(C, "resolve_accuracy", resolve_always_categorical), True),
    ("compile 'accuracy' always categorical (binary)", "metric_accuracy_binary",
     patched(C, "resolve_accuracy", resolve_always_categorical), True),
]


def main():
    passed = failed = 0
    for label, case, patch, expected in MUTATIONS:
        with patch:
            problems = C.check_case(load(case))
        caught = bool(problems)
        tag = "caught" if caught else "NOT CAUGHT"
        if expected:
            passed += caught
            failed += not caught
        else:
            tag += " (info: expected not caught)" if not caught else " (info)"
        print(f"{label:52s} {case:48s} {tag}" + (f"  ({problems[0]})" if problems else ""))
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
