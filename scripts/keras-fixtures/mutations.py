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
