#!/usr/bin/env python3
"""Generate Keras 3 reference fixtures for sample weights, class weights and
weighted metrics.

Run (from the repo root):

    KERAS_BACKEND=jax JAX_PLATFORMS=cpu python scripts/keras-fixtures/gen_weights.py

Each case builds a small Dense model (its "layers": units and activation per
layer, Dense layers named d0, d1, ...) with deterministic weights
(uniform(-0.5, 0.5), seed crc32("<case>/weights")), deterministic inputs and
labels, compiles it with SGD(learning_rate=0.1) (an exact rule, so any
difference is the weighting) and the case's loss, metrics and
weighted_metrics, then runs one of:

  - "train_on_batch": `steps` calls on the whole batch with the case's
    sample_weight / class_weight; records each call's logs and every weight
    after each call;
  - "fit": `model.fit(x, y, batch_size, epochs, shuffle=False, ...)` with
    sample_weight / class_weight / validation_split; records history and the
    weights at the end;
  - "evaluate": `model.evaluate(x, y, batch_size, sample_weight=...)`.

Output: test/fixtures/keras-weights/<case>.json, with the facts the test
needs to rebuild the case in dlc (layers, loss, metrics, data, weights) and
Keras's results. Keras is imported only here and in the other generators.
"""

import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import keras  # noqa: E402

from gen import f32_list, seed_for  # noqa: E402

assert keras.backend.backend() == "jax", "run with KERAS_BACKEND=jax"

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT_DIR = os.path.join(ROOT, "test", "fixtures", "keras-weights")
GENERATOR = "scripts/keras-fixtures/gen_weights.py"
LR = 0.1

CASES = []


def case(name, mode, layers, loss, n, labels, metrics=(), weighted_metrics=(), sample_weight=None,
         class_weight=None, steps=3, batch_size=None, epochs=1, validation_split=None, loss_args=None,
         note=None):
    CASES.append(dict(case=name, mode=mode, layers=layers, loss=loss, loss_args=loss_args or {}, n=n,
                      labels=labels, metrics=list(metrics), weighted_metrics=list(weighted_metrics),
                      sample_weight=sample_weight, class_weight=class_weight, steps=steps,
                      batch_size=batch_size, epochs=epochs, validation_split=validation_split, note=note))


SW6 = [1.0, 0.0, 2.0, 0.5, 3.0, 1.25]
SW10 = [1.0, 0.0, 2.0, 0.5, 3.0, 1.25, 0.75, 2.5, 0.0, 1.5]
CLS = [(3, "tanh"), (4, "softmax")]

case("sw_sparse_train_on_batch", "train_on_batch", CLS, "sparse_categorical_crossentropy", 6, "sparse4",
     metrics=["accuracy"], weighted_metrics=["accuracy"], sample_weight=SW6,
     note="loss = sum(l*w)/6, not sum(l*w)/sum(w); plain accuracy ignores the weights")
case("sw_zero_weights", "train_on_batch", CLS, "sparse_categorical_crossentropy", 6, "sparse4",
     metrics=["accuracy"], weighted_metrics=["accuracy"], sample_weight=[0.0] * 6, steps=2,
     note="all weights zero: loss 0, weights unchanged, weighted accuracy 0 (divide_no_nan)")
case("sw_fit_partial_batch", "fit", CLS, "sparse_categorical_crossentropy", 10, "sparse4",
     metrics=["accuracy"], weighted_metrics=["accuracy"], sample_weight=SW10, batch_size=4, epochs=2,
     note="batches of 4, 4, 2: the short batch averages over its 2 samples")
case("sw_evaluate", "evaluate", CLS, "sparse_categorical_crossentropy", 10, "sparse4",
     metrics=["accuracy"], weighted_metrics=["accuracy"], sample_weight=SW10, batch_size=4,
     note="weighted accuracy over all batches is sum(v*w)/sum(w)")
case("sw_validation_split", "fit", CLS, "sparse_categorical_crossentropy", 10, "sparse4",
     weighted_metrics=["accuracy"], sample_weight=SW10, batch_size=4, epochs=1, validation_split=0.2,
     note="the last 2 samples and their weights are held out")
case("sw_mse", "train_on_batch", [(3, "tanh"), (2, "linear")], "mean_squared_error", 6, "dense2",
     weighted_metrics=["mean_absolute_error"], sample_weight=SW6)
case("sw_ignore_class", "train_on_batch", CLS, "sparse_categorical_crossentropy", 6, "sparse4_ignore",
     loss_args={"ignore_class": 3}, sample_weight=SW6,
     note="ignored samples leave the denominator; the weights scale only the sum")
case("cw_sparse_fit", "fit", CLS, "sparse_categorical_crossentropy", 10, "sparse4",
     metrics=["accuracy"], weighted_metrics=["accuracy"], class_weight={0: 2.0, 1: 0.5, 3: 4.0},
     batch_size=4, epochs=2, note="class 2 is not listed: weight 1")
case("cw_onehot_fit", "fit", CLS, "categorical_crossentropy", 10, "onehot4",
     class_weight={0: 2.0, 1: 0.5, 2: 1.5, 3: 0.25}, batch_size=5, epochs=1)
case("cw_binary_fit", "fit", [(3, "tanh"), (1, "sigmoid")], "binary_crossentropy", 10, "binary",
     metrics=["accuracy"], class_weight={0: 1.0, 1: 3.0}, batch_size=4, epochs=1)


def make_data(spec):
    rng = np.random.default_rng(seed_for(spec["case"], "inputs"))
    n = spec["n"]
    x = rng.uniform(-1, 1, (n, 4)).astype(np.float32)
    lr = np.random.default_rng(seed_for(spec["case"], "labels"))
    kind = spec["labels"]
    if kind.startswith("sparse4"):
        y = (np.arange(n) * 7 + 1) % 4
        y = y.astype(np.int32)
    elif kind == "onehot4":
        y = np.eye(4, dtype=np.float32)[(np.arange(n) * 3 + 2) % 4]
    elif kind == "binary":
        y = ((np.arange(n) * 5 + 1) % 3 == 0).astype(np.float32).reshape(n, 1)
    elif kind == "dense2":
        y = lr.uniform(-1, 1, (n, 2)).astype(np.float32)
    else:
        raise ValueError(kind)
    return x, y


def build(spec):
    inp = keras.Input(shape=(4,))
    h = inp
    for i, (units, act) in enumerate(spec["layers"]):
        h = keras.layers.Dense(units, activation=act, name=f"d{i}")(h)
    model = keras.Model(inp, h)
    rng = np.random.default_rng(seed_for(spec["case"], "weights"))
    for v in model.weights:
        v.assign(rng.uniform(-0.5, 0.5, v.shape).astype(np.float32))
    loss = spec["loss"]
    if spec["loss_args"]:
        loss = keras.losses.get({"class_name": "SparseCategoricalCrossentropy", "config": spec["loss_args"]}) \
            if loss == "sparse_categorical_crossentropy" else loss
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=LR), loss=loss,
                  metrics=spec["metrics"] or None, weighted_metrics=spec["weighted_metrics"] or None)
    return model


def var_name(model, v):
    # Keras 3 paths are "dense/kernel"; dlc names weights "dense.kernel".
    return v.path.replace("/", ".")


def weights_of(model):
    return [dict(name=var_name(model, v), shape=list(v.shape), data=f32_list(np.asarray(v.numpy())))
            for v in model.weights]


def f32(v):
    return float(np.float32(v))


def run_case(spec):
    x, y = make_data(spec)
    model = build(spec)
    init = weights_of(model)
    sw = None if spec["sample_weight"] is None else np.asarray(spec["sample_weight"], np.float32)
    cw = spec["class_weight"]
    out = dict(case=spec["case"], generator=GENERATOR, keras_version=keras.__version__,
               note=spec["note"], mode=spec["mode"], layers=[list(l) for l in spec["layers"]],
               loss=spec["loss"], loss_args=spec["loss_args"], metrics=spec["metrics"],
               weighted_metrics=spec["weighted_metrics"], learning_rate=LR,
               x=dict(shape=list(x.shape), data=f32_list(x)),
               y=dict(shape=list(y.shape), dtype="i32" if y.dtype == np.int32 else "f32",
                      data=[int(v) for v in y.ravel()] if y.dtype == np.int32 else f32_list(y)),
               sample_weight=spec["sample_weight"], class_weight=None if cw is None else {str(k): v for k, v in cw.items()},
               weights=init)
    if spec["mode"] == "train_on_batch":
        logs, after = [], []
        for _ in range(spec["steps"]):
            r = model.train_on_batch(x, y, sample_weight=sw, class_weight=cw, return_dict=True)
            logs.append({k: f32(v) for k, v in sorted(r.items())})
            after.append({var_name(model, v): f32_list(np.asarray(v.numpy())) for v in model.weights})
        out.update(steps=spec["steps"], logs=logs, weights_after=after)
    elif spec["mode"] == "fit":
        h = model.fit(x, y, batch_size=spec["batch_size"], epochs=spec["epochs"], shuffle=False, verbose=0,
                      sample_weight=sw, class_weight=cw, validation_split=spec["validation_split"])
        out.update(batch_size=spec["batch_size"], epochs=spec["epochs"], validation_split=spec["validation_split"],
                   history={k: [f32(v) for v in vs] for k, vs in sorted(h.history.items())},
                   weights_after=[{var_name(model, v): f32_list(np.asarray(v.numpy())) for v in model.weights}])
    elif spec["mode"] == "evaluate":
        r = model.evaluate(x, y, batch_size=spec["batch_size"], sample_weight=sw, verbose=0, return_dict=True)
        out.update(batch_size=spec["batch_size"], logs=[{k: f32(v) for k, v in sorted(r.items())}])
    else:
        raise ValueError(spec["mode"])
    return out


def main(argv):
    os.makedirs(OUT_DIR, exist_ok=True)
    wanted = set(argv)
    for spec in CASES:
        if wanted and spec["case"] not in wanted:
            continue
        fx = run_case(spec)
        with open(os.path.join(OUT_DIR, spec["case"] + ".json"), "w") as f:
            json.dump(fx, f, indent=1, sort_keys=True)
            f.write("\n")
        print(spec["case"], fx.get("logs") or fx.get("history"))


if __name__ == "__main__":
    main(sys.argv[1:])
