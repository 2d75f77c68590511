#!/usr/bin/env python3
"""Independent check of the Keras fixtures, and of the Keras semantics they pin.

Run (from the repo root):

    JAX_PLATFORMS=cpu python scripts/keras-fixtures/check.py [case ...]

This does NOT import Keras. For every fixture in test/fixtures/keras/ it
rebuilds the model from scratch with plain jax.numpy formulas written from the
semantics listed in README.md (convolutions as explicit sums over kernel taps,
transposed convolution as an explicit scatter, bilinear resize as explicit
half-pixel interpolation, BatchNorm with biased batch variance, recurrent
layers as explicit Python loops over the time steps with masking and
go_backwards written out, ...), then

  1. runs it in inference mode on the fixture inputs and compares with
     "predict";
  2. runs 3 steps of plain SGD (w -= lr * dL/dw, gradients by jax.grad of the
     reference forward + loss, training-mode forward) and compares each step's
     loss with "train.losses" (the loss before that step's update), the
     per-output losses of two_outputs (the loss of an output that carries a
     Keras mask is averaged over its unmasked steps), and every variable's final value
     (including BatchNorm moving statistics, and frozen variables that must not
     move) with "train.weights".

If every case passes, the formulas in README.md are what Keras does.
"""

import json
import math
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax.scipy.special import erf  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX_DIR = os.path.join(ROOT, "test", "fixtures", "keras")

# ---------------------------------------------------------------------------
# Reference ops (channels-last everywhere, like Keras's default).
# ---------------------------------------------------------------------------


def dense(x, p, name):
    return x @ p[f"{name}.kernel"] + p[f"{name}.bias"]


def same_pads(n, k, s):
    """TF/Keras 'same': out = ceil(n/s), extra padding goes at the end."""
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def conv2d(x, k, stride=1, padding="valid"):
    """x [B,H,W,C], k [kh,kw,C,F]; cross-correlation (no kernel flip)."""
    kh, kw = k.shape[0], k.shape[1]
    if padding == "same":
        x = jnp.pad(x, ((0, 0), same_pads(x.shape[1], kh, stride),
                        same_pads(x.shape[2], kw, stride), (0, 0)))
    oh = (x.shape[1] - kh) // stride + 1
    ow = (x.shape[2] - kw) // stride + 1
    out = 0.0
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i:i + stride * (oh - 1) + 1:stride,
                      j:j + stride * (ow - 1) + 1:stride, :]
            out = out + jnp.einsum("bhwc,cf->bhwf", patch, k[i, j])
    return out


def conv1d(x, k, stride=1, padding="valid"):
    """x [B,L,C], k [kl,C,F]."""
    return conv2d(x[:, None], k[None], stride, padding)[:, 0]


def depthwise2d(x, k, padding="valid"):
    """x [B,H,W,C], k [kh,kw,C,M] -> [B,H',W',C*M], channel c*M + m."""
    kh, kw, c, m = k.shape
    if padding == "same":
        x = jnp.pad(x, ((0, 0), same_pads(x.shape[1], kh, 1),
                        same_pads(x.shape[2], kw, 1), (0, 0)))
    oh, ow = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    out = 0.0
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i:i + oh, j:j + ow, :]
            out = out + patch[..., :, None] * k[i, j]
    return out.reshape(out.shape[:3] + (c * m,))


def conv2d_transpose(x, k, stride, padding):
    """x [B,H,W,C], k [kh,kw,F,C] (note: out, in). Explicit scatter:
    full[b, i*s+ki, j*s+kj, f] += x[b,i,j,c] * k[ki,kj,f,c]; full has
    (n-1)*s + k rows. 'valid' keeps it all (k >= s here); 'same' keeps
    n*s rows starting at max(k - s, 0) // 2 (the forward 'same' conv's
    leading pad)."""
    kh, kw, f, c = k.shape
    b, h, w, _ = x.shape
    s = stride
    fh, fw = (h - 1) * s + kh, (w - 1) * s + kw
    full = jnp.zeros((b, fh, fw, f), x.dtype)
    for i in range(kh):
        for j in range(kw):
            contrib = jnp.einsum("bhwc,fc->bhwf", x, k[i, j])
            full = full.at[:, i:i + s * (h - 1) + 1:s, j:j + s * (w - 1) + 1:s, :].add(contrib)
    if padding == "valid":
        return full
    th, tw = max(kh - s, 0) // 2, max(kw - s, 0) // 2
    return full[:, th:th + h * s, tw:tw + w * s, :]


def bilinear_up(x, f):
    """Half-pixel-centre bilinear upsampling by integer factor f, edges clamped
    (align_corners=False, no antialias)."""
    def axis_weights(n):
        dst = np.arange(n * f)
        src = np.clip((dst + 0.5) / f - 0.5, 0, n - 1)
        i0 = np.floor(src).astype(int)
        i1 = np.minimum(i0 + 1, n - 1)
        w1 = (src - i0).astype(np.float32)
        m = np.zeros((n * f, n), np.float32)
        m[dst, i0] += 1 - w1
        m[dst, i1] += w1
        return jnp.asarray(m)
    mh, mw = axis_weights(x.shape[1]), axis_weights(x.shape[2])
    return jnp.einsum("Hh,bhwc,Ww->bHWc", mh, x, mw)


def batchnorm(x, p, st, name, training, momentum=0.99, eps=1e-3):
    axes = tuple(range(x.ndim - 1))
    if training:
        mean = jnp.mean(x, axes)
        var = jnp.mean(jnp.square(x - mean), axes)  # biased (divide by N)
        st = dict(st)
        st[f"{name}.moving_mean"] = (p[f"{name}.moving_mean"] * momentum
                                     + jax.lax.stop_gradient(mean) * (1 - momentum))
        st[f"{name}.moving_variance"] = (p[f"{name}.moving_variance"] * momentum
                                         + jax.lax.stop_gradient(var) * (1 - momentum))
    else:
        mean, var = p[f"{name}.moving_mean"], p[f"{name}.moving_variance"]
    y = (x - mean) / jnp.sqrt(var + eps) * p[f"{name}.gamma"] + p[f"{name}.beta"]
    return y, st


def layernorm(x, p, name, eps=1e-3):
    mean = jnp.mean(x, -1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), -1, keepdims=True)
    return (x - mean) / jnp.sqrt(var + eps) * p[f"{name}.gamma"] + p[f"{name}.beta"]


SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

ACT = {
    "gelu": lambda x: 0.5 * x * (1 + erf(x / math.sqrt(2))),  # exact (erf)
    "gelu_approximate": lambda x: 0.5 * x * (1 + jnp.tanh(
        math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))),
    "silu": lambda x: x / (1 + jnp.exp(-x)),
    "swish": lambda x: x / (1 + jnp.exp(-x)),
    "elu": lambda x: jnp.where(x > 0, x, jnp.expm1(x)),
    "selu": lambda x: SELU_SCALE * jnp.where(x > 0, x, SELU_ALPHA * jnp.expm1(x)),
    "softplus": lambda x: jnp.logaddexp(x, 0.0),
    "softsign": lambda x: x / (1 + jnp.abs(x)),
    "leaky_relu": lambda x: jnp.where(x >= 0, x, 0.2 * x),  # activations default 0.2
    "relu6": lambda x: jnp.clip(x, 0, 6),
    "hard_sigmoid": lambda x: jnp.clip(x / 6 + 0.5, 0, 1),  # Keras 3: x/6 + 1/2
    "exponential": jnp.exp,
    "log_softmax": lambda x: x - jax.scipy.special.logsumexp(x, -1, keepdims=True),
    "relu": lambda x: jnp.maximum(x, 0),
    "softmax": lambda x: jax.nn.softmax(x, -1),
}


def softmax(x, axis):
    e = jnp.exp(x - jnp.max(x, axis, keepdims=True))
    return e / jnp.sum(e, axis, keepdims=True)


# ---------------------------------------------------------------------------
# Per-case reference forwards: f(p, xs, training) -> (outputs list, state).
# p: name -> array (all variables); state: updated non-trainable variables.
# ---------------------------------------------------------------------------

def merge_case(op):
    def f(p, xs, training):
        return [op(dense(xs["a"], p, "da"), dense(xs["b"], p, "db"))], {}
    return f


FORWARD = {
    "add": merge_case(lambda a, b: a + b),
    "subtract": merge_case(lambda a, b: a - b),
    "multiply": merge_case(lambda a, b: a * b),
    "average": merge_case(lambda a, b: (a + b) / 2),
    "maximum": merge_case(jnp.maximum),
    "minimum": merge_case(jnp.minimum),
    "concatenate": merge_case(lambda a, b: jnp.concatenate([a, b], -1)),
    "concatenate_axis1": merge_case(lambda a, b: jnp.concatenate([a, b], 1)),
}


def fwd(name):
    def deco(fn):
        FORWARD[name] = fn
        return fn
    return deco


@fwd("batchnorm_dense")
def _(p, xs, training):
    y, st = batchnorm(dense(xs["x"], p, "dense"), p, {}, "bn", training)
    return [y], st


@fwd("batchnorm_conv")
def _(p, xs, training):
    h = conv2d(xs["x"], p["conv.kernel"], 1, "same") + p["conv.bias"]
    y, st = batchnorm(h, p, {}, "bn", training, momentum=0.9)
    return [y], st


@fwd("layernorm")
def _(p, xs, training):
    return [layernorm(dense(xs["x"], p, "dense"), p, "ln")], {}


@fwd("reshape")
def _(p, xs, training):
    h = dense(xs["x"], p, "dense")
    return [h.reshape(h.shape[0], 3, 4)], {}


@fwd("permute")
def _(p, xs, training):
    return [jnp.transpose(dense(xs["x"], p, "dense"), (0, 2, 1))], {}


@fwd("repeat_vector")
def _(p, xs, training):
    h = dense(xs["x"], p, "dense")
    return [jnp.repeat(h[:, None, :], 5, axis=1)], {}


for _n, _red in [("avg", jnp.mean), ("max", jnp.max)]:
    def _g2(p, xs, training, red=_red):
        h = conv2d(xs["x"], p["conv.kernel"]) + p["conv.bias"]
        return [red(h, axis=(1, 2))], {}

    def _g1(p, xs, training, red=_red):
        return [red(dense(xs["x"], p, "dense"), axis=1)], {}
    FORWARD[f"global_{_n}_pool2d"] = _g2
    FORWARD[f"global_{_n}_pool1d"] = _g1


@fwd("conv1d")
def _(p, xs, training):
    return [conv1d(xs["x"], p["conv.kernel"]) + p["conv.bias"]], {}


@fwd("conv1d_same_strided")
def _(p, xs, training):
    return [conv1d(xs["x"], p["conv.kernel"], 2, "same") + p["conv.bias"]], {}


@fwd("maxpool1d")
def _(p, xs, training):
    h = dense(xs["x"], p, "dense")
    b, l, c = h.shape
    return [jnp.max(h[:, :l // 2 * 2].reshape(b, l // 2, 2, c), 2)], {}


@fwd("avgpool1d")
def _(p, xs, training):
    h = dense(xs["x"], p, "dense")
    b, l, c = h.shape
    return [jnp.mean(h[:, :l // 2 * 2].reshape(b, l // 2, 2, c), 2)], {}


for _pad in ["valid", "same"]:
    def _ct(p, xs, training, pad=_pad):
        return [conv2d_transpose(xs["x"], p["convt.kernel"], 2, pad) + p["convt.bias"]], {}
    FORWARD[f"conv2d_transpose_{_pad}"] = _ct


def conv1x1(p, x):
    return conv2d(x, p["conv.kernel"]) + p["conv.bias"]


@fwd("upsampling2d")
def _(p, xs, training):
    h = conv1x1(p, xs["x"])
    return [jnp.repeat(jnp.repeat(h, 2, 1), 2, 2)], {}


@fwd("upsampling2d_bilinear")
def _(p, xs, training):
    return [bilinear_up(conv1x1(p, xs["x"]), 2)], {}


@fwd("zeropadding2d")
def _(p, xs, training):
    return [jnp.pad(conv1x1(p, xs["x"]), ((0, 0), (1, 0), (2, 1), (0, 0)))], {}


@fwd("cropping2d")
def _(p, xs, training):
    h = conv1x1(p, xs["x"])
    return [h[:, 1:h.shape[1] - 2, 0:h.shape[2] - 1, :]], {}


@fwd("depthwise_conv2d")
def _(p, xs, training):
    return [depthwise2d(xs["x"], p["dw.kernel"]) + p["dw.bias"]], {}


@fwd("depthwise_conv2d_mult2_same")
def _(p, xs, training):
    return [depthwise2d(xs["x"], p["dw.kernel"], "same") + p["dw.bias"]], {}


@fwd("separable_conv2d")
def _(p, xs, training):
    h = depthwise2d(xs["x"], p["sep.depthwise_kernel"])
    return [conv2d(h, p["sep.pointwise_kernel"]) + p["sep.bias"]], {}


for _a in ["gelu", "gelu_approximate", "silu", "swish", "elu", "selu", "softplus",
           "softsign", "leaky_relu", "relu6", "hard_sigmoid", "exponential",
           "log_softmax"]:
    def _act(p, xs, training, a=_a):
        return [ACT[a](dense(xs["x"], p, "dense"))], {}
    FORWARD[f"act_{_a}"] = _act


@fwd("relu_layer")
def _(p, xs, training):
    return [jnp.maximum(dense(xs["x"], p, "dense"), 0)], {}


@fwd("leaky_relu_layer")
def _(p, xs, training):
    h = dense(xs["x"], p, "dense")
    return [jnp.where(h >= 0, h, 0.2 * h)], {}


@fwd("elu_layer")
def _(p, xs, training):
    h = dense(xs["x"], p, "dense")
    return [jnp.where(h > 0, h, 0.7 * jnp.expm1(h))], {}


@fwd("softmax_layer_axis1")
def _(p, xs, training):
    return [softmax(dense(xs["x"], p, "dense"), 1)], {}


@fwd("two_outputs")
def _(p, xs, training):
    h1 = jnp.maximum(dense(xs["a"], p, "h1"), 0)
    h2 = jnp.maximum(dense(xs["b"], p, "h2"), 0)
    h = jnp.concatenate([h1, h2], -1)
    return [dense(h, p, "out_reg"), softmax(dense(h, p, "out_cls"), -1)], {}


@fwd("shared_dense")
def _(p, xs, training):
    return [dense(xs["a"], p, "shared") + dense(xs["b"], p, "shared")], {}


@fwd("residual_block")
def _(p, xs, training):
    x = xs["x"]
    h = conv2d(x, p["c1.kernel"], 1, "same") + p["c1.bias"]
    h, st = batchnorm(h, p, {}, "bn1", training)
    h = jnp.maximum(h, 0)
    h = conv2d(h, p["c2.kernel"], 1, "same") + p["c2.bias"]
    h, st = batchnorm(h, p, st, "bn2", training)
    s = conv2d(x, p["sc.kernel"]) + p["sc.bias"]
    h = jnp.maximum(h + s, 0)
    h = jnp.mean(h, axis=(1, 2))
    return [softmax(dense(h, p, "out"), -1)], st


@fwd("frozen_dense")
def _(p, xs, training):
    return [dense(dense(xs["x"], p, "d1"), p, "d2")], {}


@fwd("frozen_bn")
def _(p, xs, training):
    # A BatchNormalization whose trainable is False always runs in inference
    # mode (moving statistics, no update), even inside fit/train_on_batch.
    y, st = batchnorm(dense(xs["x"], p, "dense"), p, {}, "bn", training=False)
    return [y], st


# ---------------------------------------------------------------------------
# Recurrent layers. Variables of a recurrent layer named L with cell C are
# "L.C.kernel" [F, g*U], "L.C.recurrent_kernel" [U, g*U], "L.C.bias"; g gates.
# ---------------------------------------------------------------------------


def sigmoid(x):
    return 1 / (1 + jnp.exp(-x))


def simple_cell(p, pre, x, states):
    """SimpleRNN: h = tanh(x W + h U + b)."""
    (h,) = states
    h = jnp.tanh(x @ p[pre + ".kernel"] + h @ p[pre + ".recurrent_kernel"] + p[pre + ".bias"])
    return h, [h]


def lstm_cell(p, pre, x, states):
    """LSTM: z = x W + h U + b, split in 4 along the last axis as i, f, c, o
    (columns [0:U], [U:2U], [2U:3U], [3U:4U])."""
    h, c = states
    z = x @ p[pre + ".kernel"] + h @ p[pre + ".recurrent_kernel"] + p[pre + ".bias"]
    zi, zf, zc, zo = jnp.split(z, 4, -1)
    c = sigmoid(zf) * c + sigmoid(zi) * jnp.tanh(zc)
    h = sigmoid(zo) * jnp.tanh(c)
    return h, [h, c]


def gru_cell(p, pre, x, states, reset_after=True):
    """GRU, gates z, r, h (columns [0:U], [U:2U], [2U:3U]).
    reset_after=True: bias [2, 3U] = (input bias, recurrent bias),
      hh = tanh(x Wh + bi_h + r * (h Uh + br_h)).
    reset_after=False: bias [3U] (input side only),
      hh = tanh(x Wh + b_h + (r * h) Uh).
    Then h' = z * h + (1 - z) * hh."""
    (h,) = states
    W, U, b = p[pre + ".kernel"], p[pre + ".recurrent_kernel"], p[pre + ".bias"]
    n = U.shape[0]
    if reset_after:
        xp = x @ W + b[0]
        hp = h @ U + b[1]
        z = sigmoid(xp[:, :n] + hp[:, :n])
        r = sigmoid(xp[:, n:2 * n] + hp[:, n:2 * n])
        hh = jnp.tanh(xp[:, 2 * n:] + r * hp[:, 2 * n:])
    else:
        xp = x @ W + b
        hp = h @ U[:, :2 * n]
        z = sigmoid(xp[:, :n] + hp[:, :n])
        r = sigmoid(xp[:, n:2 * n] + hp[:, n:2 * n])
        hh = jnp.tanh(xp[:, 2 * n:] + (r * h) @ U[:, 2 * n:])
    h = z * h + (1 - z) * hh
    return h, [h]


def gru_cell_before(p, pre, x, states):
    return gru_cell(p, pre, x, states, reset_after=False)


def rnn(cell, p, pre, x, units, nstates, mask=None, go_backwards=False,
        initial_state=None):
    """Run `cell` over x [B, T, F]. Returns (last output, sequence, states).

    go_backwards: the steps are taken from t = T-1 down to 0 and the returned
    sequence is in PROCESSING order (seq[:, 0] is the output after reading
    x[:, T-1]); it is not flipped back.
    mask [B, T] (True = real step): at a masked step the states are carried
    unchanged and the output is the previous h (states[0]), i.e. the output of
    the last unmasked step, or the initial h (zeros) before any."""
    b, t = x.shape[0], x.shape[1]
    states = (list(initial_state) if initial_state is not None
              else [jnp.zeros((b, units), x.dtype)] * nstates)
    outs = []
    steps = range(t - 1, -1, -1) if go_backwards else range(t)
    for i in steps:
        out, new = cell(p, pre, x[:, i], states)
        if mask is not None:
            m = mask[:, i][:, None]
            out = jnp.where(m, out, states[0])
            new = [jnp.where(m, ns, s) for ns, s in zip(new, states)]
        outs.append(out)
        states = new
    return outs[-1], jnp.stack(outs, 1), states


CELLS = {"simple_rnn_cell": (simple_cell, 1), "lstm_cell": (lstm_cell, 2),
         "gru_cell": (gru_cell, 1)}


def rnn_layer(p, layer, x, return_sequences=False, go_backwards=False,
              mask=None, initial_state=None, return_state=False, cell=None,
              cell_name=None):
    """A SimpleRNN/LSTM/GRU layer named `layer`, cell found from the variable
    names (or passed for GRU reset_after=False)."""
    if cell_name is None:
        cell_name = next(k.split(".")[-2] for k in p if k.startswith(layer + ".")
                         and k.split(".")[-2] in CELLS)
    fn, nstates = CELLS[cell_name]
    pre = f"{layer}.{cell_name}"
    units = p[pre + ".recurrent_kernel"].shape[0]
    # looked up at call time so mutations.py can patch the module's cells
    fn = cell or globals()[fn.__name__]
    last, seq, states = rnn(fn, p, pre, x, units, nstates, mask, go_backwards,
                            initial_state)
    out = seq if return_sequences else last
    return (out, states) if return_state else out


def bidirectional(p, name, inner, x, merge, return_sequences=False):
    """Bidirectional(inner): forward layer "<name>.forward_<inner>", backward
    layer "<name>.backward_<inner>" (go_backwards=True). With
    return_sequences the backward sequence is flipped back to input order
    before merging; otherwise its last output (after reading x[:, 0]) is used."""
    y = rnn_layer(p, f"{name}.forward_{inner}", x, return_sequences)
    yr = rnn_layer(p, f"{name}.backward_{inner}", x, return_sequences, go_backwards=True)
    if return_sequences:
        yr = bidi_flip(yr)
    return BIDI_MERGE[merge](y, yr)


def bidi_flip(yr):
    return yr[:, ::-1]


BIDI_MERGE = {
    "concat": lambda a, b: jnp.concatenate([a, b], -1),
    "sum": lambda a, b: a + b,
    "mul": lambda a, b: a * b,
    "ave": lambda a, b: (a + b) / 2,
}


def embedding(p, name, tok):
    return p[f"{name}.embeddings"][tok]


@fwd("rnn_simple")
def _(p, xs, training):
    return [dense(rnn_layer(p, "rnn", xs["x"]), p, "dense")], {}


@fwd("rnn_simple_seq")
def _(p, xs, training):
    return [dense(rnn_layer(p, "rnn", xs["x"], return_sequences=True), p, "dense")], {}


@fwd("rnn_lstm")
def _(p, xs, training):
    return [dense(rnn_layer(p, "lstm", xs["x"]), p, "dense")], {}


@fwd("rnn_lstm_seq_backwards")
def _(p, xs, training):
    return [rnn_layer(p, "lstm", xs["x"], return_sequences=True, go_backwards=True)], {}


@fwd("rnn_lstm_state")
def _(p, xs, training):
    out, (h, c) = rnn_layer(p, "lstm", xs["x"], return_state=True)
    return [jnp.concatenate([out, h, c], -1)], {}


@fwd("rnn_lstm_initial_state")
def _(p, xs, training):
    return [rnn_layer(p, "lstm", xs["x"], initial_state=[xs["h0"], xs["c0"]])], {}


@fwd("rnn_gru")
def _(p, xs, training):
    return [dense(rnn_layer(p, "gru", xs["x"]), p, "dense")], {}


@fwd("rnn_gru_seq")
def _(p, xs, training):
    return [rnn_layer(p, "gru", xs["x"], return_sequences=True, go_backwards=True)], {}


@fwd("rnn_gru_reset_before")
def _(p, xs, training):
    h = rnn_layer(p, "gru", xs["x"], cell=gru_cell_before)
    return [dense(h, p, "dense")], {}


@fwd("rnn_stacked")
def _(p, xs, training):
    h = rnn_layer(p, "lstm", xs["x"], return_sequences=True)
    return [dense(rnn_layer(p, "gru", h), p, "dense")], {}


for _m in ["concat", "sum", "mul", "ave"]:
    def _bi(p, xs, training, m=_m):
        return [bidirectional(p, "bi", "lstm", xs["x"], m, return_sequences=(m == "concat"))], {}
    FORWARD[f"rnn_bidirectional_{_m}"] = _bi


def token_mask(tok):
    """Embedding(mask_zero=True): id 0 is padding."""
    return tok != 0


@fwd("rnn_embedding_lstm_mask")
def _(p, xs, training):
    tok = xs["tok"]
    h = rnn_layer(p, "lstm", embedding(p, "emb", tok), mask=token_mask(tok))
    return [dense(h, p, "dense")], {}


@fwd("rnn_embedding_gru_seq_mask")
def _(p, xs, training):
    tok = xs["tok"]
    h = rnn_layer(p, "gru", embedding(p, "emb", tok), return_sequences=True,
                  mask=token_mask(tok))
    return [dense(h, p, "dense")], {}


def masking_mask(x, value=0.0):
    """Masking(mask_value): a step is masked only when ALL its features equal
    mask_value."""
    return jnp.any(x != value, -1)


@fwd("rnn_masking")
def _(p, xs, training):
    x = xs["x"]
    mask = masking_mask(x)
    x = x * mask[..., None]           # (the layer also zeroes masked steps)
    return [dense(rnn_layer(p, "rnn", x, mask=mask), p, "dense")], {}


@fwd("rnn_time_distributed")
def _(p, xs, training):
    h = dense(xs["x"], p, "td.dense")  # TimeDistributed(Dense) = Dense on each step
    return [rnn_layer(p, "lstm", h)], {}


@fwd("rnn_embedding")
def _(p, xs, training):
    e = embedding(p, "emb", xs["tok"])
    return [dense(e.reshape(e.shape[0], -1), p, "dense")], {}


# Outputs that carry a Keras mask into the loss: case -> fn(xs) -> one mask
# (or None) per output. The mask of Embedding(mask_zero=True) goes through the
# return_sequences RNN and the Dense after it to the model output.
OUTPUT_MASKS = {
    "rnn_embedding_gru_seq_mask": lambda xs: [token_mask(xs["tok"])],
}

# ---------------------------------------------------------------------------
# Losses.
# ---------------------------------------------------------------------------

EPS = 1e-7  # keras.config.epsilon()


def mse(y, pred, mask=None):
    # per-sample: mean over the last axis; then "sum_over_batch_size": sum of
    # the per-sample values / their count. Together: the mean over all elements.
    # With an output mask [B, T] (True = real step) the masked entries get
    # weight 0 and the rest weight total/valid, so the result is the mean of
    # the per-step values over the unmasked steps only.
    per = jnp.mean(jnp.square(pred - y), -1)
    if mask is not None:
        return masked_mean(per, mask)
    return jnp.sum(per) / per.size


def masked_mean(per, mask):
    w = mask.astype(per.dtype)
    return jnp.sum(per * w) / jnp.sum(w)


def sparse_cce(y, pred):
    # probabilities (from_logits=False): renormalise along the last axis, clip
    # to [eps, 1 - eps], -log of the target's entry, mean over the batch.
    pr = pred / jnp.sum(pred, -1, keepdims=True)
    pr = jnp.clip(pr, EPS, 1 - EPS)
    per = -jnp.take_along_axis(jnp.log(pr), y[..., None], -1)[..., 0]
    return jnp.sum(per) / per.size


LOSSES = {"mse": mse, "sparse_categorical_crossentropy": sparse_cce}

# ---------------------------------------------------------------------------


def arr(entry, dtype=None):
    if dtype is None:  # inputs: float32 unless the entry says "dtype": "int32"
        dtype = np.int32 if entry.get("dtype") == "int32" else np.float32
    return jnp.asarray(np.asarray(entry["data"], dtype=dtype).reshape(entry["shape"]))


def close(a, b, rtol, atol):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    err = np.abs(a - b)
    ok = bool(np.all(err <= atol + rtol * np.abs(b)))
    return ok, float(err.max()) if err.size else 0.0


def check_case(fx, rtol=2e-5, atol=2e-6):
    name = fx["case"]
    f = FORWARD[name]
    xs = {e["name"]: arr(e) for e in fx["inputs"]}
    p0 = {w["name"]: arr(w) for w in fx["weights"]}
    trainable = [w["name"] for w in fx["weights"] if w["trainable"]]
    problems = []

    outs, _ = f(p0, xs, False)
    for i, (o, want) in enumerate(zip(outs, fx["predict"])):
        assert list(o.shape) == fx["outputs"][i]["shape"], (name, o.shape)
        ok, err = close(o.reshape(-1), want, rtol, atol)
        if not ok:
            problems.append(f"predict[{i}] max err {err:.3g}")

    tr = fx["train"]
    out_names = [o["name"] for o in fx["outputs"]]
    loss_spec = tr["loss"]
    lw = tr.get("loss_weights", {})
    ys = [arr(t, np.int32 if t["dtype"] == "int32" else np.float32) for t in tr["targets"]]
    masks = OUTPUT_MASKS[name](xs) if name in OUTPUT_MASKS else [None] * len(ys)

    def total_loss(tp, p):
        pp = dict(p)
        pp.update(tp)
        outs, st = f(pp, xs, True)
        parts = {}
        total = 0.0
        for n, o, y, m in zip(out_names, outs, ys, masks):
            ln = loss_spec[n] if isinstance(loss_spec, dict) else loss_spec
            l = LOSSES[ln](y, o) if m is None else LOSSES[ln](y, o, m)
            parts[n] = l
            total = total + lw.get(n, 1.0) * l
        return total, (st, parts)

    grad_fn = jax.value_and_grad(total_loss, has_aux=True)
    p = dict(p0)
    lr = tr["optimizer"]["learning_rate"]
    for step in range(tr["steps"]):
        tp = {k: p[k] for k in trainable}
        (loss, (st, parts)), g = grad_fn(tp, p)
        ok, err = close(loss, tr["losses"][step], 1e-5, 1e-6)
        if not ok:
            problems.append(f"loss[{step}] {float(loss)} vs {tr['losses'][step]}")
        if "output_losses" in tr:
            for n, v in parts.items():
                want = tr["output_losses"][step][f"{n}_loss"]
                ok, err = close(v, want, 1e-5, 1e-6)
                if not ok:
                    problems.append(f"output_loss[{step}][{n}] {float(v)} vs {want}")
        for k in trainable:
            p[k] = p[k] - lr * g[k]
        p.update(st)

    for w in tr["weights"]:
        ok, err = close(p[w["name"]].reshape(-1), w["data"], 1e-4, 1e-5)
        if not ok:
            problems.append(f"final {w['name']} max err {err:.3g}")
        if not w["trainable"] and w["name"] not in {k for k in p if "moving" in k}:
            # frozen (non-moving-stat) variables must not change at all
            w0 = next(x for x in fx["weights"] if x["name"] == w["name"])
            if w0["data"] != w["data"]:
                problems.append(f"frozen {w['name']} changed")
    return problems


def main(argv):
    files = sorted(f for f in os.listdir(FIX_DIR) if f.endswith(".json"))
    wanted = set(argv)
    failed = 0
    n = 0
    for fn in files:
        fx = json.load(open(os.path.join(FIX_DIR, fn)))
        if wanted and fx["case"] not in wanted:
            continue
        n += 1
        problems = check_case(fx)
        status = "ok" if not problems else "FAIL " + "; ".join(problems)
        failed += bool(problems)
        print(f"{fx['case']:32s} {status}")
    print(f"{n - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
