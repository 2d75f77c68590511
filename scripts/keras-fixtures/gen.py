#!/usr/bin/env python3
"""Generate Keras 3 reference fixtures for dlc's Keras-like API.

Run (from the repo root):

    KERAS_BACKEND=jax JAX_PLATFORMS=cpu python scripts/keras-fixtures/gen.py [case ...]

Each case is a tiny functional model, built by the Python source in CASES
(that exact source is stored in the fixture's "code" field). For every case the
script sets deterministic weights, draws deterministic inputs and targets,
records `model(x, training=False)`, then compiles with SGD(lr=0.1) and runs
`train_on_batch` 3 times on the same full batch, recording each step's loss and
the final values of all model variables. Output: test/fixtures/keras/<case>.json.

Inputs are float32 `uniform(-1, 1)` unless the case gives its own values
(the `inputs` key below). An input whose Keras dtype is an integer type (token
ids for Embedding) is written with an extra `"dtype": "int32"` field and its
data as JSON integers: `{"name", "shape", "dtype": "int32", "data": [3, 1, 0, ...]}`.
Float inputs have no "dtype" field (float32 is implied), as before.

Variable names are the Keras variable path with "/" replaced by ".":
`dense.kernel`, and for layers that hold sub-layers the full path, e.g.
`lstm.lstm_cell.kernel`, `bi.forward_lstm.lstm_cell.bias`, `td.dense.kernel`.

Keras is imported only here: the fixtures are plain JSON and the TypeScript
tests need neither Python nor Keras.
"""

import json
import os
import sys
import zlib

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402
import jax  # noqa: E402
import keras  # noqa: E402

assert keras.backend.backend() == "jax", "run with KERAS_BACKEND=jax"

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT_DIR = os.path.join(ROOT, "test", "fixtures", "keras")
GENERATOR = "scripts/keras-fixtures/gen.py"
STEPS = 3
LR = 0.1


# ---------------------------------------------------------------------------
# Cases. Each "code" must define `model`. Optional keys: batch (default 2),
# loss (default "mse"), loss_weights, classes (for sparse CE targets: dict
# output name -> number of classes, or int for a single output), inputs (dict
# input name -> fn(rng, shape) returning that input's values, for integer
# tokens or inputs with structure such as all-zero time steps).
# ---------------------------------------------------------------------------

CASES = []


def case(name, code, **kw):
    CASES.append(dict(case=name, code=code.strip("\n") + "\n", **kw))


MERGE = '''
a = keras.Input(shape=(4,), name="a")
b = keras.Input(shape=(4,), name="b")
xa = keras.layers.Dense(3, name="da")(a)
xb = keras.layers.Dense(3, name="db")(b)
out = keras.layers.{cls}(name="merge")([xa, xb])
model = keras.Model([a, b], out)
'''
for _name, _cls in [
    ("add", "Add"),
    ("subtract", "Subtract"),
    ("multiply", "Multiply"),
    ("average", "Average"),
    ("maximum", "Maximum"),
    ("minimum", "Minimum"),
]:
    case(_name, MERGE.format(cls=_cls))

case("concatenate", '''
a = keras.Input(shape=(3, 4), name="a")
b = keras.Input(shape=(3, 2), name="b")
xa = keras.layers.Dense(3, name="da")(a)
xb = keras.layers.Dense(3, name="db")(b)
out = keras.layers.Concatenate(axis=-1, name="merge")([xa, xb])
model = keras.Model([a, b], out)
''')

case("concatenate_axis1", '''
a = keras.Input(shape=(3, 4), name="a")
b = keras.Input(shape=(3, 2), name="b")
xa = keras.layers.Dense(3, name="da")(a)
xb = keras.layers.Dense(3, name="db")(b)
out = keras.layers.Concatenate(axis=1, name="merge")([xa, xb])
model = keras.Model([a, b], out)
''')

case("batchnorm_dense", '''
x = keras.Input(shape=(5,), name="x")
h = keras.layers.Dense(6, name="dense")(x)
out = keras.layers.BatchNormalization(name="bn")(h)
model = keras.Model(x, out)
''', batch=4)

case("batchnorm_conv", '''
x = keras.Input(shape=(5, 5, 2), name="x")
h = keras.layers.Conv2D(3, 3, padding="same", name="conv")(x)
out = keras.layers.BatchNormalization(momentum=0.9, name="bn")(h)
model = keras.Model(x, out)
''', batch=3)

case("layernorm", '''
x = keras.Input(shape=(3, 6), name="x")
h = keras.layers.Dense(6, name="dense")(x)
out = keras.layers.LayerNormalization(name="ln")(h)
model = keras.Model(x, out)
''')

case("reshape", '''
x = keras.Input(shape=(6,), name="x")
h = keras.layers.Dense(12, name="dense")(x)
out = keras.layers.Reshape((3, 4), name="reshape")(h)
model = keras.Model(x, out)
''')

case("permute", '''
x = keras.Input(shape=(3, 4), name="x")
h = keras.layers.Dense(5, name="dense")(x)
out = keras.layers.Permute((2, 1), name="permute")(h)
model = keras.Model(x, out)
''')

case("repeat_vector", '''
x = keras.Input(shape=(4,), name="x")
h = keras.layers.Dense(3, name="dense")(x)
out = keras.layers.RepeatVector(5, name="repeat")(h)
model = keras.Model(x, out)
''')

for _name, _cls in [("global_avg_pool2d", "GlobalAveragePooling2D"),
                    ("global_max_pool2d", "GlobalMaxPooling2D")]:
    case(_name, f'''
x = keras.Input(shape=(5, 5, 2), name="x")
h = keras.layers.Conv2D(3, 3, name="conv")(x)
out = keras.layers.{_cls}(name="pool")(h)
model = keras.Model(x, out)
''')

for _name, _cls in [("global_avg_pool1d", "GlobalAveragePooling1D"),
                    ("global_max_pool1d", "GlobalMaxPooling1D")]:
    case(_name, f'''
x = keras.Input(shape=(6, 3), name="x")
h = keras.layers.Dense(4, name="dense")(x)
out = keras.layers.{_cls}(name="pool")(h)
model = keras.Model(x, out)
''')

case("conv1d", '''
x = keras.Input(shape=(8, 3), name="x")
out = keras.layers.Conv1D(4, 3, name="conv")(x)
model = keras.Model(x, out)
''')

case("conv1d_same_strided", '''
x = keras.Input(shape=(8, 3), name="x")
out = keras.layers.Conv1D(4, 3, strides=2, padding="same", name="conv")(x)
model = keras.Model(x, out)
''')

for _name, _cls in [("maxpool1d", "MaxPooling1D"), ("avgpool1d", "AveragePooling1D")]:
    case(_name, f'''
x = keras.Input(shape=(8, 3), name="x")
h = keras.layers.Dense(4, name="dense")(x)
out = keras.layers.{_cls}(2, name="pool")(h)
model = keras.Model(x, out)
''')

for _pad in ["valid", "same"]:
    case(f"conv2d_transpose_{_pad}", f'''
x = keras.Input(shape=(4, 4, 2), name="x")
out = keras.layers.Conv2DTranspose(3, 3, strides=2, padding="{_pad}", name="convt")(x)
model = keras.Model(x, out)
''')

case("upsampling2d", '''
x = keras.Input(shape=(3, 3, 2), name="x")
h = keras.layers.Conv2D(2, 1, name="conv")(x)
out = keras.layers.UpSampling2D(2, name="up")(h)
model = keras.Model(x, out)
''')

case("upsampling2d_bilinear", '''
x = keras.Input(shape=(3, 3, 2), name="x")
h = keras.layers.Conv2D(2, 1, name="conv")(x)
out = keras.layers.UpSampling2D(2, interpolation="bilinear", name="up")(h)
model = keras.Model(x, out)
''')

case("zeropadding2d", '''
x = keras.Input(shape=(3, 3, 2), name="x")
h = keras.layers.Conv2D(2, 1, name="conv")(x)
out = keras.layers.ZeroPadding2D(((1, 0), (2, 1)), name="pad")(h)
model = keras.Model(x, out)
''')

case("cropping2d", '''
x = keras.Input(shape=(6, 6, 2), name="x")
h = keras.layers.Conv2D(2, 1, name="conv")(x)
out = keras.layers.Cropping2D(((1, 2), (0, 1)), name="crop")(h)
model = keras.Model(x, out)
''')

case("depthwise_conv2d", '''
x = keras.Input(shape=(5, 5, 3), name="x")
out = keras.layers.DepthwiseConv2D(3, name="dw")(x)
model = keras.Model(x, out)
''')

case("depthwise_conv2d_mult2_same", '''
x = keras.Input(shape=(5, 5, 3), name="x")
out = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(x)
model = keras.Model(x, out)
''')

case("separable_conv2d", '''
x = keras.Input(shape=(5, 5, 3), name="x")
out = keras.layers.SeparableConv2D(4, 3, name="sep")(x)
model = keras.Model(x, out)
''')

for _act in ["gelu", "silu", "swish", "elu", "selu", "softplus", "softsign",
             "leaky_relu", "relu6", "hard_sigmoid", "exponential", "log_softmax"]:
    case(f"act_{_act}", f'''
x = keras.Input(shape=(5,), name="x")
out = keras.layers.Dense(4, activation="{_act}", name="dense")(x)
model = keras.Model(x, out)
''')

case("act_gelu_approximate", '''
x = keras.Input(shape=(5,), name="x")
out = keras.layers.Dense(4, activation=lambda t: keras.activations.gelu(t, approximate=True), name="dense")(x)
model = keras.Model(x, out)
''')

case("relu_layer", '''
x = keras.Input(shape=(5,), name="x")
h = keras.layers.Dense(4, name="dense")(x)
out = keras.layers.ReLU(name="act")(h)
model = keras.Model(x, out)
''')

case("leaky_relu_layer", '''
x = keras.Input(shape=(5,), name="x")
h = keras.layers.Dense(4, name="dense")(x)
out = keras.layers.LeakyReLU(negative_slope=0.2, name="act")(h)
model = keras.Model(x, out)
''')

case("elu_layer", '''
x = keras.Input(shape=(5,), name="x")
h = keras.layers.Dense(4, name="dense")(x)
out = keras.layers.ELU(alpha=0.7, name="act")(h)
model = keras.Model(x, out)
''')

case("softmax_layer_axis1", '''
x = keras.Input(shape=(3, 4), name="x")
h = keras.layers.Dense(4, name="dense")(x)
out = keras.layers.Softmax(axis=1, name="act")(h)
model = keras.Model(x, out)
''')

case("two_outputs", '''
a = keras.Input(shape=(4,), name="a")
b = keras.Input(shape=(3,), name="b")
h1 = keras.layers.Dense(5, activation="relu", name="h1")(a)
h2 = keras.layers.Dense(5, activation="relu", name="h2")(b)
h = keras.layers.Concatenate(name="cat")([h1, h2])
out_reg = keras.layers.Dense(2, name="out_reg")(h)
out_cls = keras.layers.Dense(3, activation="softmax", name="out_cls")(h)
model = keras.Model([a, b], [out_reg, out_cls])
''', batch=4,
     loss={"out_reg": "mse", "out_cls": "sparse_categorical_crossentropy"},
     loss_weights={"out_reg": 1.0, "out_cls": 0.5},
     classes={"out_cls": 3})

case("shared_dense", '''
a = keras.Input(shape=(4,), name="a")
b = keras.Input(shape=(4,), name="b")
shared = keras.layers.Dense(3, name="shared")
out = keras.layers.Add(name="add")([shared(a), shared(b)])
model = keras.Model([a, b], out)
''')

case("residual_block", '''
x = keras.Input(shape=(6, 6, 2), name="x")
h = keras.layers.Conv2D(4, 3, padding="same", name="c1")(x)
h = keras.layers.BatchNormalization(name="bn1")(h)
h = keras.layers.ReLU(name="r1")(h)
h = keras.layers.Conv2D(4, 3, padding="same", name="c2")(h)
h = keras.layers.BatchNormalization(name="bn2")(h)
s = keras.layers.Conv2D(4, 1, name="sc")(x)
h = keras.layers.Add(name="add")([h, s])
h = keras.layers.ReLU(name="r2")(h)
h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
out = keras.layers.Dense(3, activation="softmax", name="out")(h)
model = keras.Model(x, out)
''', loss="sparse_categorical_crossentropy", classes=3)

case("frozen_dense", '''
x = keras.Input(shape=(4,), name="x")
h = keras.layers.Dense(5, trainable=False, name="d1")(x)
out = keras.layers.Dense(2, name="d2")(h)
model = keras.Model(x, out)
''')

case("frozen_bn", '''
x = keras.Input(shape=(5,), name="x")
h = keras.layers.Dense(4, name="dense")(x)
bn = keras.layers.BatchNormalization(name="bn")
out = bn(h)
model = keras.Model(x, out)
bn.trainable = False
''')


# --- Recurrent layers ------------------------------------------------------
# No dropout anywhere (its randomness cannot be matched). Sizes stay tiny:
# batch 2-3, 4-5 time steps, 3 features, 3-4 units.

case("rnn_simple", """
x = keras.Input(shape=(4, 3), name="x")
h = keras.layers.SimpleRNN(4, name="rnn")(x)
out = keras.layers.Dense(2, name="dense")(h)
model = keras.Model(x, out)
""")

case("rnn_simple_seq", """
x = keras.Input(shape=(4, 3), name="x")
h = keras.layers.SimpleRNN(4, return_sequences=True, name="rnn")(x)
out = keras.layers.Dense(2, name="dense")(h)
model = keras.Model(x, out)
""")

case("rnn_lstm", """
x = keras.Input(shape=(4, 3), name="x")
h = keras.layers.LSTM(4, name="lstm")(x)
out = keras.layers.Dense(2, name="dense")(h)
model = keras.Model(x, out)
""")

case("rnn_lstm_seq_backwards", """
x = keras.Input(shape=(5, 3), name="x")
out = keras.layers.LSTM(3, return_sequences=True, go_backwards=True, name="lstm")(x)
model = keras.Model(x, out)
""")

# A layer's several outputs all carry the layer's name, so a multi-output model
# [seq, h, c] would have three outputs named "lstm" (and Keras's train logs
# collide); they are concatenated instead: [B, 3*units] = [output | h | c].
case("rnn_lstm_state", """
x = keras.Input(shape=(4, 3), name="x")
seq, h, c = keras.layers.LSTM(4, return_state=True, name="lstm")(x)
out = keras.layers.Concatenate(name="cat")([seq, h, c])
model = keras.Model(x, out)
""")

case("rnn_lstm_initial_state", """
x = keras.Input(shape=(4, 3), name="x")
h0 = keras.Input(shape=(4,), name="h0")
c0 = keras.Input(shape=(4,), name="c0")
out = keras.layers.LSTM(4, name="lstm")(x, initial_state=[h0, c0])
model = keras.Model([x, h0, c0], out)
""")

case("rnn_gru", """
x = keras.Input(shape=(4, 3), name="x")
h = keras.layers.GRU(4, name="gru")(x)
out = keras.layers.Dense(2, name="dense")(h)
model = keras.Model(x, out)
""")

case("rnn_gru_seq", """
x = keras.Input(shape=(5, 3), name="x")
out = keras.layers.GRU(3, return_sequences=True, go_backwards=True, name="gru")(x)
model = keras.Model(x, out)
""")

case("rnn_gru_reset_before", """
x = keras.Input(shape=(4, 3), name="x")
h = keras.layers.GRU(4, reset_after=False, name="gru")(x)
out = keras.layers.Dense(2, name="dense")(h)
model = keras.Model(x, out)
""")

case("rnn_stacked", """
x = keras.Input(shape=(4, 3), name="x")
h = keras.layers.LSTM(4, return_sequences=True, name="lstm")(x)
h = keras.layers.GRU(3, name="gru")(h)
out = keras.layers.Dense(2, name="dense")(h)
model = keras.Model(x, out)
""")

for _mode, _seq in [("concat", True), ("sum", False), ("mul", False), ("ave", False)]:
    _rs = ", return_sequences=True" if _seq else ""
    case(f"rnn_bidirectional_{_mode}", f"""
x = keras.Input(shape=(4, 3), name="x")
out = keras.layers.Bidirectional(keras.layers.LSTM(3{_rs}, name="lstm"), merge_mode="{_mode}", name="bi")(x)
model = keras.Model(x, out)
""")

# Token ids with padding (0): sample 0 has none, sample 1 trailing zeros,
# sample 2 a leading, a middle and a trailing zero.
TOKENS = [[3, 1, 4, 6, 2],
          [5, 2, 6, 0, 0],
          [0, 4, 0, 3, 0]]

case("rnn_embedding_lstm_mask", """
tok = keras.Input(shape=(5,), dtype="int32", name="tok")
e = keras.layers.Embedding(input_dim=7, output_dim=3, mask_zero=True, name="emb")(tok)
h = keras.layers.LSTM(4, name="lstm")(e)
out = keras.layers.Dense(2, name="dense")(h)
model = keras.Model(tok, out)
""", batch=3, inputs={"tok": lambda rng, shape: np.array(TOKENS)})

case("rnn_embedding_gru_seq_mask", """
tok = keras.Input(shape=(5,), dtype="int32", name="tok")
e = keras.layers.Embedding(input_dim=7, output_dim=3, mask_zero=True, name="emb")(tok)
h = keras.layers.GRU(3, return_sequences=True, name="gru")(e)
out = keras.layers.Dense(2, name="dense")(h)
model = keras.Model(tok, out)
""", batch=3, inputs={"tok": lambda rng, shape: np.array(TOKENS)})


def _zero_steps(rng, shape):
    """uniform(-1, 1) with whole time steps set to 0.0 (masked by Masking):
    sample 0 none, sample 1 its last two steps, sample 2 its first and third
    step. Sample 0 also gets a single 0.0 feature (not a masked step)."""
    xv = rng.uniform(-1, 1, shape)
    xv[1, 3:] = 0.0
    xv[2, 0] = 0.0
    xv[2, 2] = 0.0
    xv[0, 1, 0] = 0.0
    return xv


case("rnn_masking", """
x = keras.Input(shape=(5, 3), name="x")
m = keras.layers.Masking(mask_value=0.0, name="mask")(x)
h = keras.layers.SimpleRNN(3, name="rnn")(m)
out = keras.layers.Dense(2, name="dense")(h)
model = keras.Model(x, out)
""", batch=3, inputs={"x": _zero_steps})

case("rnn_time_distributed", """
x = keras.Input(shape=(4, 3), name="x")
h = keras.layers.TimeDistributed(keras.layers.Dense(3, name="dense"), name="td")(x)
out = keras.layers.LSTM(3, name="lstm")(h)
model = keras.Model(x, out)
""")

def _tokens_no_mask(rng, shape):
    """Random ids in [0, 7); the first is forced to 0, which is an ordinary
    token here (no mask_zero), and ids repeat (their gradients add up)."""
    t = rng.integers(0, 7, shape)
    t[0, 0] = 0
    return t


case("rnn_embedding", """
tok = keras.Input(shape=(4,), dtype="int32", name="tok")
e = keras.layers.Embedding(input_dim=7, output_dim=3, name="emb")(tok)
h = keras.layers.Flatten(name="flat")(e)
out = keras.layers.Dense(2, name="dense")(h)
model = keras.Model(tok, out)
""", batch=3, inputs={"tok": _tokens_no_mask})


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def seed_for(case_name, tag):
    """A stable per-(case, tag) seed (crc32 is stable across Python runs)."""
    return zlib.crc32(f"{case_name}/{tag}".encode())


def f32_list(arr):
    """Flat row-major list of float32 values as Python floats that round-trip.

    Each value is written as the shortest decimal that reads back as the same
    float32 (numpy's float32 repr). A reader that parses it as a float64 and
    rounds to float32 (JSON.parse + Float32Array / Math.fround) gets the exact
    float32 back; that is checked here for every value, falling back to the
    exact float64 value of the float32 where the short form would not do.
    """
    flat = np.asarray(arr, dtype=np.float32).reshape(-1)
    out = []
    for v in flat:
        short = float(str(v))
        if np.float32(short) == v or (np.isnan(v) and np.isnan(short)):
            out.append(short)
        else:  # pragma: no cover - not hit in practice
            out.append(float(v))
        assert np.float32(out[-1]) == v, (v, out[-1])
    return out


def init_value(var_name, shape, rng):
    if var_name == "moving_variance":
        return rng.uniform(0.5, 1.5, shape)
    if var_name == "moving_mean":
        return rng.uniform(-0.2, 0.2, shape)
    if var_name == "gamma":
        return rng.uniform(0.8, 1.2, shape)
    return rng.uniform(-0.5, 0.5, shape)


def layer_var_name(var):
    # "dense/kernel" -> "dense.kernel"; nested layers keep their full path:
    # "lstm/lstm_cell/kernel" -> "lstm.lstm_cell.kernel".
    parts = var.path.split("/")
    assert len(parts) >= 2 and all(parts), var.path
    assert not any("." in q for q in parts), var.path
    return ".".join(parts)


def dump_weights(model):
    trainable_ids = {id(v) for v in model.trainable_variables}
    out = []
    for v in model.weights:
        val = np.asarray(v.numpy(), dtype=np.float32)
        out.append({
            "name": layer_var_name(v),
            "shape": list(val.shape),
            "trainable": id(v) in trainable_ids,
            "data": f32_list(val),
        })
    return out


def input_entry(name, xv):
    if xv.dtype == np.int32:
        return {"name": name, "shape": list(xv.shape), "dtype": "int32",
                "data": xv.reshape(-1).tolist()}
    return {"name": name, "shape": list(xv.shape), "data": f32_list(xv)}


def output_name(t):
    return t._keras_history.operation.name


def run_case(spec):
    name = spec["case"]
    batch = spec.get("batch", 2)
    keras.utils.clear_session()
    ns = {"keras": keras}
    exec(spec["code"], ns)
    model = ns["model"]

    # Deterministic weights, in model.weights order.
    rng = np.random.default_rng(seed_for(name, "weights"))
    for v in model.weights:
        short = v.path.split("/")[-1]
        v.assign(init_value(short, tuple(v.shape), rng).astype(np.float32))
    init_weights = dump_weights(model)

    # Inputs.
    rng = np.random.default_rng(seed_for(name, "inputs"))
    xs = []
    custom = spec.get("inputs", {})
    for inp in model.inputs:
        shape = (batch,) + tuple(inp.shape[1:])
        is_int = "int" in str(inp.dtype)
        if inp.name in custom:
            xv = np.asarray(custom[inp.name](rng, shape))
            assert xv.shape == shape, (inp.name, xv.shape, shape)
        else:
            assert not is_int, f"integer input {inp.name} needs an inputs entry"
            xv = rng.uniform(-1, 1, shape)
        xs.append(xv.astype(np.int32 if is_int else np.float32))
    x_arg = xs if len(xs) > 1 else xs[0]

    # Predict (inference mode).
    pred = model(x_arg, training=False)
    preds = pred if isinstance(pred, (list, tuple)) else [pred]
    preds = [np.asarray(p, dtype=np.float32) for p in preds]
    out_names = [output_name(t) for t in model.outputs]

    # Targets, one per output.
    loss = spec.get("loss", "mse")
    classes = spec.get("classes")
    rng = np.random.default_rng(seed_for(name, "targets"))
    targets = []
    for oname, p in zip(out_names, preds):
        l = loss[oname] if isinstance(loss, dict) else loss
        if l == "sparse_categorical_crossentropy":
            k = classes[oname] if isinstance(classes, dict) else classes
            assert k == p.shape[-1]
            t = rng.integers(0, k, p.shape[:-1]).astype(np.int32)
        else:
            assert l == "mse", l
            t = rng.uniform(-1, 1, p.shape).astype(np.float32)
        targets.append(t)
    y_arg = (dict(zip(out_names, targets)) if len(targets) > 1 else targets[0])

    # Train.
    compile_kw = dict(optimizer=keras.optimizers.SGD(learning_rate=LR), loss=loss)
    if "loss_weights" in spec:
        compile_kw["loss_weights"] = spec["loss_weights"]
    model.compile(**compile_kw)
    losses, output_losses = [], []
    for _ in range(STEPS):
        logs = model.train_on_batch(x_arg, y_arg, return_dict=True)
        losses.append(float(np.float32(logs["loss"])))
        extra = {k: float(np.float32(v)) for k, v in logs.items() if k != "loss"}
        if extra:
            output_losses.append(extra)
    final_weights = dump_weights(model)

    train = {
        "optimizer": {"kind": "sgd", "learning_rate": LR},
        "loss": loss,
    }
    if "loss_weights" in spec:
        train["loss_weights"] = spec["loss_weights"]
    train["targets"] = [
        {
            "shape": list(t.shape),
            "dtype": "int32" if t.dtype == np.int32 else "float32",
            "data": t.reshape(-1).tolist() if t.dtype == np.int32 else f32_list(t),
        }
        for t in targets
    ]
    train["steps"] = STEPS
    train["losses"] = f32_list(losses)
    if output_losses:
        train["output_losses"] = [
            {k: f32_list([v])[0] for k, v in d.items()} for d in output_losses
        ]
    train["weights"] = final_weights

    fixture = {
        "case": name,
        "generator": GENERATOR,
        "keras": keras.__version__,
        "jax": jax.__version__,
        "code": spec["code"],
        "inputs": [input_entry(inp.name, xv) for inp, xv in zip(model.inputs, xs)],
        "outputs": [
            {"name": n, "shape": list(p.shape)} for n, p in zip(out_names, preds)
        ],
        "weights": init_weights,
        "predict": [f32_list(p) for p in preds],
        "train": train,
    }
    return fixture


def to_json(obj, indent=""):
    """JSON with one line per top-level key, per train key, and per entry of a
    list of objects/arrays (inputs, weights, predict, ...); everything else
    compact. Diffs stay readable and files small."""
    def compact(o):
        return json.dumps(o, separators=(",", ":"), allow_nan=False)
    inner = indent + "  "
    if isinstance(obj, dict) and (indent == "" or "steps" in obj):
        items = [f"{inner}{json.dumps(k)}: {to_json(v, inner)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(obj, list) and obj and all(isinstance(e, (dict, list)) for e in obj):
        items = [inner + compact(e) for e in obj]
        return "[\n" + ",\n".join(items) + "\n" + indent + "]"
    return compact(obj)


def main(argv):
    wanted = set(argv)
    names = [c["case"] for c in CASES]
    assert len(names) == len(set(names)), "duplicate case names"
    unknown = wanted - set(names)
    if unknown:
        sys.exit(f"unknown case(s): {sorted(unknown)}")
    os.makedirs(OUT_DIR, exist_ok=True)
    for spec in CASES:
        if wanted and spec["case"] not in wanted:
            continue
        fx = run_case(spec)
        path = os.path.join(OUT_DIR, f"{spec['case']}.json")
        text = to_json(fx)
        assert json.loads(text) == json.loads(json.dumps(fx))
        with open(path, "w") as f:
            f.write(text + "\n")
        print(f"{spec['case']:32s} {len(text):6d} B  losses={fx['train']['losses']}")


if __name__ == "__main__":
    main(sys.argv[1:])
