#!/usr/bin/env python3
"""Generate Keras 3 reference fixtures for losses and metrics on fixed values.

Run (from the repo root):

    KERAS_BACKEND=jax JAX_PLATFORMS=cpu python scripts/keras-fixtures/gen_losses.py [case ...]

Loss cases: for fixed y_true / y_pred (a batch of 4) the script records
  - per_sample: the loss object with reduction="none" (one value per sample),
  - value:      the loss object with its default reduction
                ("sum_over_batch_size"),
  - grad:       jax.grad of `value` with respect to y_pred, through Keras's loss.
Metric cases: the metric function's per-sample (or per-element) values and the
result of a fresh metric object after one update_state.
Output: test/fixtures/keras-losses/<case>.json. The format is documented in
README.md ("Loss and metric fixtures").
"""

import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
from keras.src.trainers import compile_utils  # noqa: E402

from gen import f32_list, seed_for  # noqa: E402

assert keras.backend.backend() == "jax", "run with KERAS_BACKEND=jax"

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT_DIR = os.path.join(ROOT, "test", "fixtures", "keras-losses")
GENERATOR = "scripts/keras-fixtures/gen_losses.py"
B = 4

# ---------------------------------------------------------------------------
# Data makers: fn(rng) -> np array. float32 unless int.
# ---------------------------------------------------------------------------


def uni(lo, hi, shape=(B, 3)):
    return lambda rng: rng.uniform(lo, hi, shape).astype(np.float32)


def binary(shape=(B, 3)):
    return lambda rng: rng.integers(0, 2, shape).astype(np.float32)


def onehot(k=3):
    return lambda rng: np.eye(k, dtype=np.float32)[rng.integers(0, k, B)]


def labels(k=3):
    return lambda rng: rng.integers(0, k, B).astype(np.int32)


def probs(k=3, normalized=True):
    def f(rng):
        z = rng.uniform(-2, 2, (B, k))
        p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
        if not normalized:
            p = p * rng.uniform(0.5, 1.5, (B, 1))
        return p.astype(np.float32)
    return f


def const(a, dtype=np.float32):
    return lambda rng: np.asarray(a, dtype)


# ---------------------------------------------------------------------------
# Loss cases: (name, class, kwargs, keras function name, y_true maker,
# y_pred maker, note, check) ; `check(y_true, y_pred)` asserts the data
# exercises what the case is about.
# ---------------------------------------------------------------------------

LOSS_CASES = []


def loss_case(name, cls, kwargs, fn, yt, yp, note, check=None):
    LOSS_CASES.append(dict(case=name, cls=cls, kwargs=kwargs, fn=fn, yt=yt, yp=yp,
                           note=note, check=check))


def _huber_both(delta):
    def c(t, p):
        e = np.abs(p - t)
        assert (e <= delta).any() and (e > delta).any(), "huber: need both branches"
    return c


def _hinge_both(t, p):
    m = 1 - (2 * t - 1) * p
    assert (m > 0).any() and (m < 0).any(), "hinge: need both branches"


def _cat_hinge_both(t, p):
    pos = (t * p).sum(-1)
    neg = ((1 - t) * p).max(-1)
    z = neg - pos + 1
    assert (z > 0).any() and (z < 0).any(), "categorical_hinge: need both branches"


def _has_ignored(t, p):
    assert (t == 2).sum() == 1


PER = "per_sample = "
loss_case("mean_squared_error", "MeanSquaredError", {}, "mean_squared_error",
          uni(-1, 1), uni(-1, 1), PER + "mean((y_pred - y_true)^2, axis=-1)")
loss_case("mean_absolute_error", "MeanAbsoluteError", {}, "mean_absolute_error",
          uni(-1, 1), uni(-1, 1), PER + "mean(|y_pred - y_true|, axis=-1)")
loss_case("huber", "Huber", {}, "huber", uni(-1, 1), uni(-2, 2),
          PER + "mean(where(|e| <= delta, 0.5*e^2, delta*|e| - 0.5*delta^2), axis=-1), "
          "e = y_pred - y_true, delta 1.0 by default (|e| == delta takes the quadratic branch)",
          _huber_both(1.0))
loss_case("huber_delta_0_5", "Huber", {"delta": 0.5}, "huber", uni(-1, 1), uni(-1, 1),
          PER + "as huber with delta 0.5", _huber_both(0.5))
loss_case("kl_divergence", "KLDivergence", {}, "kl_divergence",
          const([[0.2, 0.3, 0.5], [0.0, 0.4, 0.6], [0.7, 0.2, 0.1], [0.25, 0.25, 0.5]]),
          probs(),
          PER + "sum(t * log(t / p), axis=-1) with t = clip(y_true, 1e-7, 1), "
          "p = clip(y_pred, 1e-7, 1) (a 0 in y_true becomes 1e-7 and contributes "
          "1e-7*log(1e-7/p), not 0)")
loss_case("log_cosh", "LogCosh", {}, "log_cosh", uni(-1, 1), uni(-2, 2),
          PER + "mean(x + softplus(-2x) - log(2), axis=-1), x = y_pred - y_true "
          "(= log(cosh(x)) computed stably); d/dx = tanh(x)")
loss_case("hinge", "Hinge", {}, "hinge", binary(), uni(-2, 2),
          PER + "mean(max(1 - t*y_pred, 0), axis=-1) where t = 2*y_true - 1 if EVERY "
          "y_true entry is 0 or 1 (else y_true as given, expected -1/1)", _hinge_both)
loss_case("categorical_hinge", "CategoricalHinge", {}, "categorical_hinge", onehot(), uni(-2, 2),
          PER + "max(neg - pos + 1, 0), pos = sum(y_true*y_pred, -1), "
          "neg = max((1 - y_true)*y_pred, -1)", _cat_hinge_both)
loss_case("poisson", "Poisson", {}, "poisson",
          lambda rng: rng.integers(0, 4, (B, 3)).astype(np.float32), uni(0.1, 3),
          PER + "mean(y_pred - y_true*log(y_pred + 1e-7), axis=-1)")
loss_case("cosine_similarity", "CosineSimilarity", {}, "cosine_similarity",
          uni(-1, 1), uni(-1, 1),
          PER + "-sum(l2n(y_true)*l2n(y_pred), axis=-1), l2n(x) = x * min(1/sqrt(sum(x^2, -1)), 1/1e-7) "
          "(NEGATIVE cosine: -1 is a perfect match)")
loss_case("binary_crossentropy", "BinaryCrossentropy", {}, "binary_crossentropy",
          binary(), uni(0.05, 0.95),
          PER + "mean(-(t*log(p) + (1-t)*log(1-p)), axis=-1), p = clip(y_pred, 1e-7, 1-1e-7) "
          "(JAX backend: no renormalisation, no logit recovery)")
loss_case("binary_crossentropy_logits", "BinaryCrossentropy", {"from_logits": True},
          "binary_crossentropy", binary(), uni(-3, 3),
          PER + "mean(-t*log_sigmoid(x) - (1-t)*log_sigmoid(-x), axis=-1), x = y_pred; "
          "d/dx = sigmoid(x) - t")
loss_case("binary_crossentropy_label_smoothing", "BinaryCrossentropy", {"label_smoothing": 0.1},
          "binary_crossentropy", binary(), uni(0.05, 0.95),
          PER + "binary_crossentropy with t = y_true*(1 - ls) + 0.5*ls (labels squeezed "
          "towards 0.5: 1 -> 0.95, 0 -> 0.05 for ls 0.1); y_pred untouched")
loss_case("binary_crossentropy_logits_label_smoothing", "BinaryCrossentropy",
          {"from_logits": True, "label_smoothing": 0.1}, "binary_crossentropy",
          binary(), uni(-3, 3), PER + "binary_crossentropy_logits with the smoothed t")
loss_case("categorical_crossentropy", "CategoricalCrossentropy", {}, "categorical_crossentropy",
          onehot(), probs(),
          PER + "-sum(t*log(clip(p/sum(p, -1), 1e-7, 1-1e-7)), -1) (y_pred renormalised "
          "along the last axis first)")
loss_case("categorical_crossentropy_unnormalized", "CategoricalCrossentropy", {},
          "categorical_crossentropy", onehot(), probs(normalized=False),
          PER + "as categorical_crossentropy; the rows of y_pred do not sum to 1, which "
          "pins the renormalisation p/sum(p)")
loss_case("categorical_crossentropy_logits", "CategoricalCrossentropy", {"from_logits": True},
          "categorical_crossentropy", onehot(), uni(-3, 3),
          PER + "-sum(t*log_softmax(x), -1); d/dx = softmax(x)*sum(t) - t")
loss_case("categorical_crossentropy_label_smoothing", "CategoricalCrossentropy",
          {"label_smoothing": 0.1}, "categorical_crossentropy", onehot(), probs(),
          PER + "categorical_crossentropy with t = y_true*(1 - ls) + ls/C (C = 3 classes: "
          "1 -> 0.9333, 0 -> 0.0333)")
loss_case("categorical_crossentropy_logits_label_smoothing", "CategoricalCrossentropy",
          {"from_logits": True, "label_smoothing": 0.1}, "categorical_crossentropy",
          onehot(), uni(-3, 3), PER + "categorical_crossentropy_logits with the smoothed t")
loss_case("sparse_categorical_crossentropy", "SparseCategoricalCrossentropy", {},
          "sparse_categorical_crossentropy", labels(), probs(),
          PER + "-log(clip(p/sum(p, -1), 1e-7, 1-1e-7)[y_true])")
loss_case("sparse_categorical_crossentropy_unnormalized", "SparseCategoricalCrossentropy", {},
          "sparse_categorical_crossentropy", labels(), probs(normalized=False),
          PER + "as sparse_categorical_crossentropy; rows of y_pred do not sum to 1")
loss_case("sparse_categorical_crossentropy_logits", "SparseCategoricalCrossentropy",
          {"from_logits": True}, "sparse_categorical_crossentropy", labels(), uni(-3, 3),
          PER + "-log_softmax(x)[y_true]")
loss_case("sparse_categorical_crossentropy_ignore_class", "SparseCategoricalCrossentropy",
          {"ignore_class": 2}, "sparse_categorical_crossentropy",
          const([0, 2, 1, 0], np.int32), probs(),
          PER + "sparse_categorical_crossentropy for samples whose label != ignore_class, "
          "0 for the others; the loss carries a mask, so the reduced value is "
          "sum(per_sample)/(number of NOT ignored samples), here /3 not /4; the "
          "gradient of an ignored sample's y_pred row is 0", _has_ignored)
loss_case("sparse_categorical_crossentropy_logits_ignore_class", "SparseCategoricalCrossentropy",
          {"from_logits": True, "ignore_class": 2}, "sparse_categorical_crossentropy",
          const([0, 2, 1, 0], np.int32), uni(-3, 3),
          PER + "as sparse_categorical_crossentropy_ignore_class, from logits", _has_ignored)

# ---------------------------------------------------------------------------
# Metric cases: (name, metric class, kwargs, function, y_true, y_pred,
# compile string or None, note)
# ---------------------------------------------------------------------------

METRIC_CASES = []


def metric_case(name, cls, kwargs, fn, yt, yp, compile_name, note):
    METRIC_CASES.append(dict(case=name, cls=cls, kwargs=kwargs, fn=fn, yt=yt, yp=yp,
                             compile_name=compile_name, note=note))


P43 = [[0.1, 0.6, 0.3], [0.5, 0.2, 0.3], [0.2, 0.2, 0.6], [0.4, 0.4, 0.2]]
metric_case("metric_accuracy_sparse", "SparseCategoricalAccuracy", {},
            "sparse_categorical_accuracy", const([1, 2, 2, 1], np.int32), const(P43),
            "accuracy",
            "per_sample = (argmax(y_pred, -1) == y_true); argmax takes the FIRST maximum "
            "(row 3 ties classes 0 and 1 -> 0, label 1 -> no match). compile's 'accuracy' "
            "with integer labels of rank y_pred.rank-1 (or last dim 1 with y_pred's > 1) "
            "resolves to SparseCategoricalAccuracy")
metric_case("metric_accuracy_onehot", "CategoricalAccuracy", {}, "categorical_accuracy",
            const(np.eye(3)[[1, 2, 2, 0]]), const(P43), "accuracy",
            "per_sample = (argmax(y_pred, -1) == argmax(y_true, -1)), first maximum on ties "
            "(row 3 ties 0 and 1 -> 0 == label 0, a match). compile's 'accuracy' with "
            "y_true and y_pred of the same shape, last dim > 1, resolves to CategoricalAccuracy")
metric_case("metric_accuracy_binary", "BinaryAccuracy", {}, "binary_accuracy",
            const([[1.0], [0.0], [1.0], [0.0]]), const([[0.7], [0.4], [0.5], [0.5]]),
            "accuracy",
            "per_sample = (float(y_pred > 0.5) == y_true) (STRICT >: 0.5 counts as 0). "
            "compile's 'accuracy' with y_pred last dim 1 resolves to BinaryAccuracy")
metric_case("metric_binary_accuracy", "BinaryAccuracy", {}, "binary_accuracy",
            const([[1, 0, 1], [0, 0, 1], [1, 1, 0], [0, 1, 0]]),
            const([[0.9, 0.2, 0.4], [0.6, 0.1, 0.8], [0.5, 0.7, 0.3], [0.2, 0.55, 0.51]]),
            "binary_accuracy",
            "binary_accuracy returns one value PER ELEMENT ([4,3] here: "
            "float(y_pred > 0.5) == y_true); the metric object averages them per sample "
            "and then over samples = the mean over all elements")
metric_case("metric_sparse_top_k", "SparseTopKCategoricalAccuracy", {"k": 2},
            "sparse_top_k_categorical_accuracy", const([2, 0, 2, 3], np.int32),
            const([[0.1, 0.2, 0.3, 0.4], [0.1, 0.5, 0.2, 0.2], [0.3, 0.3, 0.3, 0.1],
                   [0.25, 0.25, 0.25, 0.25]]),
            None,
            "per_sample = (1 + count(y_pred > y_pred[label]) <= k): ties with the label's "
            "score count in its favour (row 1: label 0 at 0.1 has rank 4 -> 0; row 2: label 2 "
            "in a 3-way tie -> rank 1 -> 1; row 3: label 3, all 4 tied -> rank 1 -> 1, where "
            "'take the first k indices of a sort' would give 0); NaN at the label counts as -inf")
metric_case("metric_top_k", "TopKCategoricalAccuracy", {"k": 2}, "top_k_categorical_accuracy",
            const(np.eye(4)[[2, 0, 2, 3]]),
            const([[0.1, 0.2, 0.3, 0.4], [0.1, 0.5, 0.2, 0.2], [0.3, 0.3, 0.3, 0.1],
                   [0.25, 0.25, 0.25, 0.25]]),
            None,
            "as metric_sparse_top_k with label = argmax(y_true); NOTE the default k is 5 "
            "for both top-k metrics")
metric_case("metric_mae", "MeanAbsoluteError", {}, "mean_absolute_error",
            uni(-1, 1), uni(-1, 1), "mae",
            "per_sample = mean(|y_pred - y_true|, -1); result = mean over samples")
metric_case("metric_mse", "MeanSquaredError", {}, "mean_squared_error",
            uni(-1, 1), uni(-1, 1), "mse",
            "per_sample = mean((y_pred - y_true)^2, -1); result = mean over samples")

# ---------------------------------------------------------------------------


def arr_entry(a):
    a = np.asarray(a)
    if a.dtype == np.int32:
        return {"shape": list(a.shape), "dtype": "int32", "data": a.reshape(-1).tolist()}
    return {"shape": list(a.shape), "dtype": "float32", "data": f32_list(a)}


def make_data(spec):
    yt = spec["yt"](np.random.default_rng(seed_for(spec["case"], "y_true")))
    yp = spec["yp"](np.random.default_rng(seed_for(spec["case"], "y_pred")))
    return yt, yp


def run_loss(spec):
    yt, yp = make_data(spec)
    if spec["check"]:
        spec["check"](yt, yp)
    cls = getattr(keras.losses, spec["cls"])
    per = np.asarray(cls(reduction="none", **spec["kwargs"])(yt, yp), np.float32)
    loss = cls(**spec["kwargs"])
    value = np.float32(loss(yt, yp))
    grad = np.asarray(jax.grad(lambda p: loss(jnp.asarray(yt), p))(jnp.asarray(yp)), np.float32)
    fn_per = np.asarray(getattr(keras.losses, spec["fn"])(yt, yp, **spec["kwargs"]), np.float32)
    assert np.array_equal(fn_per, per) or "ignore_class" in spec["kwargs"], spec["case"]
    assert np.all(np.isfinite(grad)), (spec["case"], grad)
    return {
        "case": spec["case"],
        "generator": GENERATOR,
        "keras": keras.__version__,
        "jax": jax.__version__,
        "kind": "loss",
        "loss": {"class": spec["cls"], "function": spec["fn"], "args": spec["kwargs"],
                 "reduction": loss.reduction},
        "y_true": arr_entry(yt),
        "y_pred": arr_entry(yp),
        "per_sample": f32_list(per),
        "value": f32_list([value])[0],
        "grad": f32_list(grad),
        "notes": spec["note"] + ". value = sum(per_sample) / number of samples "
                 "(\"sum_over_batch_size\") unless stated; grad = d value / d y_pred.",
    }


def run_metric(spec):
    yt, yp = make_data(spec)
    fn = getattr(keras.metrics, spec["fn"])
    per = np.asarray(fn(yt, yp, **spec["kwargs"]), np.float32)
    m = getattr(keras.metrics, spec["cls"])(**spec["kwargs"])
    m.update_state(yt, yp)
    value = np.float32(m.result())
    metric = {"class": spec["cls"], "function": spec["fn"], "args": spec["kwargs"]}
    if spec["compile_name"]:
        resolved = compile_utils.get_metric(spec["compile_name"], yt, yp)
        metric["compile_name"] = spec["compile_name"]
        metric["compile_resolves_to"] = type(resolved).__name__
        if type(resolved).__name__ != "MeanMetricWrapper":
            assert type(resolved).__name__ == spec["cls"], (spec["case"], type(resolved))
    return {
        "case": spec["case"],
        "generator": GENERATOR,
        "keras": keras.__version__,
        "jax": jax.__version__,
        "kind": "metric",
        "metric": metric,
        "y_true": arr_entry(yt),
        "y_pred": arr_entry(yp),
        "per_sample_shape": list(per.shape),
        "per_sample": f32_list(per),
        "value": f32_list([value])[0],
        "notes": spec["note"],
    }


def to_json(fx):
    c = lambda o: json.dumps(o, separators=(",", ":"), allow_nan=False)  # noqa: E731
    return "{\n" + ",\n".join(f"  {json.dumps(k)}: {c(v)}" for k, v in fx.items()) + "\n}"


def main(argv):
    wanted = set(argv)
    specs = [(s, run_loss) for s in LOSS_CASES] + [(s, run_metric) for s in METRIC_CASES]
    names = [s["case"] for s, _ in specs]
    assert len(names) == len(set(names))
    unknown = wanted - set(names)
    if unknown:
        sys.exit(f"unknown case(s): {sorted(unknown)}")
    os.makedirs(OUT_DIR, exist_ok=True)
    for spec, run in specs:
        if wanted and spec["case"] not in wanted:
            continue
        fx = run(spec)
        text = to_json(fx)
        assert json.loads(text) == json.loads(json.dumps(fx))
        with open(os.path.join(OUT_DIR, spec["case"] + ".json"), "w") as f:
            f.write(text + "\n")
        print(f"{spec['case']:50s} {len(text):5d} B value={fx['value']:.6g} per={fx['per_sample']}")


if __name__ == "__main__":
    main(sys.argv[1:])
