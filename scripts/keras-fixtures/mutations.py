#!/usr/bin/env python3
"""Mutation test for check.py: swap in plausible WRONG semantics and make sure
the fixtures catch each one (i.e. check_case reports a problem).

Run: JAX_PLATFORMS=cpu python scripts/keras-fixtures/mutations.py
Prints one line per mutation, then "N passed, M failed"; a mutation "passes"
here when the check FAILS with it.
"""
import json
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import check as C  # noqa: E402


def load(case):
    with open(os.path.join(C.FIX_DIR, case + ".json")) as f:
        return json.load(f)


def patched(obj, attr, value):
    class P:
        def __enter__(self):
            self.old = getattr(obj, attr) if not isinstance(obj, dict) else obj[attr]
            if isinstance(obj, dict):
                obj[attr] = value
            else:
                setattr(obj, attr, value)

        def __exit__(self, *a):
            if isinstance(obj, dict):
                obj[attr] = self.old
            else:
                setattr(obj, attr, self.old)
    return P()


_bn = C.batchnorm
_ct = C.conv2d_transpose
_dw = C.depthwise2d
_ln = C.layernorm
_mse = C.LOSSES["mse"]


def bn_unbiased_everywhere(x, p, st, name, training, momentum=0.99, eps=1e-3):
    if not training:
        return _bn(x, p, st, name, training, momentum, eps)
    axes = tuple(range(x.ndim - 1))
    n = int(np.prod([x.shape[a] for a in axes]))
    mean = jnp.mean(x, axes)
    var = jnp.sum(jnp.square(x - mean), axes) / (n - 1)
    st = dict(st)
    st[f"{name}.moving_mean"] = p[f"{name}.moving_mean"] * momentum + mean * (1 - momentum)
    st[f"{name}.moving_variance"] = p[f"{name}.moving_variance"] * momentum + var * (1 - momentum)
    y = (x - mean) / jnp.sqrt(var + eps) * p[f"{name}.gamma"] + p[f"{name}.beta"]
    return y, st


def bn_unbiased_moving_only(x, p, st, name, training, momentum=0.99, eps=1e-3):
    y, st2 = _bn(x, p, st, name, training, momentum, eps)
    if training:
        axes = tuple(range(x.ndim - 1))
        n = int(np.prod([x.shape[a] for a in axes]))
        var = jnp.var(x, axes) * n / (n - 1)
        st2[f"{name}.moving_variance"] = (p[f"{name}.moving_variance"] * momentum
                                          + var * (1 - momentum))
    return y, st2


def ct_centred_crop(x, k, s, pad):
    if pad == "valid":
        return _ct(x, k, s, pad)
    full = _ct(x, k, s, "valid")
    h, w = x.shape[1] * s, x.shape[2] * s
    return full[:, 1:1 + h, 1:1 + w, :]


def ct_flipped(x, k, s, pad):
    return _ct(x, k[::-1, ::-1], s, pad)


def bilinear_align_corners(x, f):
    def aw(n):
        dst = np.arange(n * f)
        src = dst * (n - 1) / (n * f - 1)
        i0 = np.floor(src).astype(int)
        i1 = np.minimum(i0 + 1, n - 1)
        w1 = (src - i0).astype(np.float32)
        m = np.zeros((n * f, n), np.float32)
        m[dst, i0] += 1 - w1
        m[dst, i1] += w1
        return jnp.asarray(m)
    return jnp.einsum("Hh,bhwc,Ww->bHWc", aw(x.shape[1]), x, aw(x.shape[2]))


def dw_channel_major(x, k, padding="valid"):
    o = _dw(x, k, padding)
    c, m = k.shape[2], k.shape[3]
    return o.reshape(o.shape[:3] + (c, m)).transpose(0, 1, 2, 4, 3).reshape(o.shape)


def frozen_bn_training(p, xs, training):
    y, st = _bn(C.dense(xs["x"], p, "dense"), p, {}, "bn", training)
    return [y], st


# --- Recurrent variants ------------------------------------------------------

def gru_variant(reset_before_matmul=False, swap_z=False):
    """Keras's GRU cell (see check.gru_cell) with one thing changed:
    reset_before_matmul: with reset_after=True weights, r multiplies h BEFORE
      the recurrent matmul ((r*h) Uh + br_h instead of r * (h Uh + br_h));
    swap_z: h' = (1 - z) h + z hh instead of z h + (1 - z) hh."""
    def cell(p, pre, x, states, reset_after=True):
        (h,) = states
        W, U, b = p[pre + ".kernel"], p[pre + ".recurrent_kernel"], p[pre + ".bias"]
        n = U.shape[0]
        bi, br = (b[0], b[1]) if reset_after else (b, jnp.zeros_like(b))
        xp = x @ W + bi
        z = C.sigmoid(xp[:, :n] + h @ U[:, :n] + br[:n])
        r = C.sigmoid(xp[:, n:2 * n] + h @ U[:, n:2 * n] + br[n:2 * n])
        if reset_after and not reset_before_matmul:
            rec = r * (h @ U[:, 2 * n:] + br[2 * n:])
        else:
            rec = (r * h) @ U[:, 2 * n:] + br[2 * n:]
        hh = jnp.tanh(xp[:, 2 * n:] + rec)
        h = (1 - z) * h + z * hh if swap_z else z * h + (1 - z) * hh
        return h, [h]
    return cell


def lstm_ifoc(p, pre, x, states):
    """Gate columns read as i, f, o, c instead of Keras's i, f, c, o."""
    h, c = states
    z = x @ p[pre + ".kernel"] + h @ p[pre + ".recurrent_kernel"] + p[pre + ".bias"]
    zi, zf, zo, zc = jnp.split(z, 4, -1)
    c = C.sigmoid(zf) * c + C.sigmoid(zi) * jnp.tanh(zc)
    h = C.sigmoid(zo) * jnp.tanh(c)
    return h, [h, c]


def lstm_forget_bias_plus_one(p, pre, x, states):
    """TF1 BasicLSTMCell-style forget_bias=1.0 added at run time (Keras's
    unit_forget_bias only INITIALISES the bias)."""
    h, c = states
    z = x @ p[pre + ".kernel"] + h @ p[pre + ".recurrent_kernel"] + p[pre + ".bias"]
    zi, zf, zc, zo = jnp.split(z, 4, -1)
    c = C.sigmoid(zf + 1.0) * c + C.sigmoid(zi) * jnp.tanh(zc)
    h = C.sigmoid(zo) * jnp.tanh(c)
    return h, [h, c]


def rnn_variant(state_at_mask="carry", out_at_mask="prev", flip_back=False,
                ignore_mask=False, ignore_initial_state=False):
    def f(cell, p, pre, x, units, nstates, mask=None, go_backwards=False,
          initial_state=None):
        if ignore_mask:
            mask = None
        if ignore_initial_state:
            initial_state = None
        b, t = x.shape[0], x.shape[1]
        states = (list(initial_state) if initial_state is not None
                  else [jnp.zeros((b, units), x.dtype)] * nstates)
        outs = []
        for i in (range(t - 1, -1, -1) if go_backwards else range(t)):
            out, new = cell(p, pre, x[:, i], states)
            if mask is not None:
                m = mask[:, i][:, None]
                prev = states[0] if out_at_mask == "prev" else jnp.zeros_like(out)
                out = jnp.where(m, out, prev)
                if state_at_mask == "carry":
                    new = [jnp.where(m, ns, s) for ns, s in zip(new, states)]
                else:  # reset
                    new = [jnp.where(m, ns, 0.0) for ns in new]
            outs.append(out)
            states = new
        seq = jnp.stack(outs, 1)
        if go_backwards and flip_back:
            seq = seq[:, ::-1]
        return outs[-1], seq, states
    return f


def two_outputs_unweighted():
    fx = load("two_outputs")
    fx["train"]["loss_weights"] = {}
    return fx


MUTATIONS = [
    ("gelu as tanh approximation", "act_gelu",
     patched(C.ACT, "gelu", C.ACT["gelu_approximate"])),
    ("leaky_relu slope 0.3", "act_leaky_relu",
     patched(C.ACT, "leaky_relu", lambda x: jnp.where(x >= 0, x, 0.3 * x))),
    ("hard_sigmoid as 0.2x+0.5", "act_hard_sigmoid",
     patched(C.ACT, "hard_sigmoid", lambda x: jnp.clip(0.2 * x + 0.5, 0, 1))),
    ("BN unbiased variance (dense)", "batchnorm_dense",
     patched(C, "batchnorm", bn_unbiased_everywhere)),
    ("BN unbiased variance (conv)", "batchnorm_conv",
     patched(C, "batchnorm", bn_unbiased_everywhere)),
    ("BN unbiased variance in moving update only", "batchnorm_conv",
     patched(C, "batchnorm", bn_unbiased_moving_only)),
    ("frozen BN in training mode", "frozen_bn",
     patched(C.FORWARD, "frozen_bn", frozen_bn_training)),
    ("Conv2DTranspose same: centred crop", "conv2d_transpose_same",
     patched(C, "conv2d_transpose", ct_centred_crop)),
    ("Conv2DTranspose flipped kernel", "conv2d_transpose_valid",
     patched(C, "conv2d_transpose", ct_flipped)),
    ("bilinear align_corners=True", "upsampling2d_bilinear",
     patched(C, "bilinear_up", bilinear_align_corners)),
    ("depthwise channel order m*C+c", "depthwise_conv2d_mult2_same",
     patched(C, "depthwise2d", dw_channel_major)),
    ("LayerNorm epsilon 1e-5", "layernorm",
     patched(C, "layernorm", lambda x, p, name, eps=1e-3: _ln(x, p, name, 1e-5))),
    ("mse: sum over last axis, mean over batch", "concatenate",
     patched(C.LOSSES, "mse", lambda y, p: jnp.mean(jnp.sum(jnp.square(p - y), -1)))),
    ("two outputs without loss_weights", None, None),
    ("GRU reset_after: r applied before the matmul", "rnn_gru",
     patched(C, "gru_cell", gru_variant(reset_before_matmul=True))),
    ("GRU reset_after: r before matmul (stacked)", "rnn_stacked",
     patched(C, "gru_cell", gru_variant(reset_before_matmul=True))),
    ("GRU h = (1-z) h + z hh", "rnn_gru",
     patched(C, "gru_cell", gru_variant(swap_z=True))),
    ("GRU h = (1-z) h + z hh (reset_before)", "rnn_gru_reset_before",
     patched(C, "gru_cell", gru_variant(swap_z=True))),
    ("LSTM gate order i,f,o,c", "rnn_lstm",
     patched(C, "lstm_cell", lstm_ifoc)),
    ("LSTM forget bias +1 at run time", "rnn_lstm",
     patched(C, "lstm_cell", lstm_forget_bias_plus_one)),
    ("go_backwards: sequence flipped to input order", "rnn_lstm_seq_backwards",
     patched(C, "rnn", rnn_variant(flip_back=True))),
    ("go_backwards: sequence flipped (GRU)", "rnn_gru_seq",
     patched(C, "rnn", rnn_variant(flip_back=True))),
    ("Bidirectional: backward seq not re-flipped", "rnn_bidirectional_concat",
     patched(C, "bidi_flip", lambda y: y)),
    ("Bidirectional ave as sum", "rnn_bidirectional_ave",
     patched(C.BIDI_MERGE, "ave", C.BIDI_MERGE["sum"])),
    ("LSTM initial_state ignored", "rnn_lstm_initial_state",
     patched(C, "rnn", rnn_variant(ignore_initial_state=True))),
    ("mask resets the state (LSTM)", "rnn_embedding_lstm_mask",
     patched(C, "rnn", rnn_variant(state_at_mask="reset"))),
    ("mask resets the state (SimpleRNN, Masking)", "rnn_masking",
     patched(C, "rnn", rnn_variant(state_at_mask="reset"))),
    ("masked step outputs zeros (LSTM last output)", "rnn_embedding_lstm_mask",
     patched(C, "rnn", rnn_variant(out_at_mask="zero"))),
    ("masked step outputs zeros (GRU sequence)", "rnn_embedding_gru_seq_mask",
     patched(C, "rnn", rnn_variant(out_at_mask="zero"))),
    ("mask ignored (padding processed)", "rnn_embedding_lstm_mask",
     patched(C, "rnn", rnn_variant(ignore_mask=True))),
    ("Masking ignored", "rnn_masking",
     patched(C, "rnn", rnn_variant(ignore_mask=True))),
    ("Masking: step masked if ANY feature is 0", "rnn_masking",
     patched(C, "masking_mask", lambda x, value=0.0: jnp.all(x != value, -1))),
    ("loss ignores the output mask", "rnn_embedding_gru_seq_mask",
     patched(C.OUTPUT_MASKS, "rnn_embedding_gru_seq_mask", lambda xs: [None])),
]


def main():
    passed = failed = 0
    for label, case, patch in MUTATIONS:
        if patch is None:
            problems = C.check_case(two_outputs_unweighted())
        else:
            with patch:
                problems = C.check_case(load(case))
        caught = bool(problems)
        passed += caught
        failed += not caught
        print(f"{label:45s} {'caught' if caught else 'NOT CAUGHT'}"
              + (f"  ({problems[0]})" if problems else ""))
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
