#!/usr/bin/env python3
"""Generate Keras 3 reference fixtures for optimizers, learning-rate schedules,
gradient clipping and weight decay.

Run (from the repo root):

    KERAS_BACKEND=jax JAX_PLATFORMS=cpu python scripts/keras-fixtures/gen_optim.py [case ...]

Every case trains the SAME small model on the SAME batch:

    x [4, 4] -> Dense(3, tanh, name="hidden") -> Dense(2, name="out"), loss "mse"

with deterministic weights (uniform(-0.5, 0.5), seed crc32("optim/weights")),
inputs (uniform(-1, 1), seed crc32("optim/inputs")) and targets
(uniform(-1, 1), seed crc32("optim/targets")). For each case the script
compiles with the case's optimizer and runs `train_on_batch` 5 times on that
batch, recording before each step the learning rate
(`float(model.optimizer.learning_rate)`, which for a schedule is
`schedule(optimizer.iterations)`), and after each step the loss that step
reported and every weight. Output: test/fixtures/keras-optim/<case>.json.
The format is documented in README.md ("Optimizer fixtures").

Keras is imported only here (and in gen.py, whose float helper is reused).
"""

import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import jax  # noqa: E402
import keras  # noqa: E402

from gen import f32_list, seed_for  # noqa: E402

assert keras.backend.backend() == "jax", "run with KERAS_BACKEND=jax"

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT_DIR = os.path.join(ROOT, "test", "fixtures", "keras-optim")
GENERATOR = "scripts/keras-fixtures/gen_optim.py"
STEPS = 5
BATCH = 4

MODEL_CODE = '''
x = keras.Input(shape=(4,), name="x")
h = keras.layers.Dense(3, activation="tanh", name="hidden")(x)
out = keras.layers.Dense(2, name="out")(h)
model = keras.Model(x, out)
'''.strip("\n") + "\n"

# ---------------------------------------------------------------------------
# Exact update rules (Keras 3.15.1, keras/src/optimizers/*.py), written into
# each fixture's "notes". t = optimizer.iterations + 1 (1 at the first step);
# lr = the learning rate of this step (schedule(iterations) for a schedule).
# All state starts at 0 unless stated.
# ---------------------------------------------------------------------------

COMMON = (
    "Per step (base_optimizer.apply / JaxOptimizer._backend_apply_gradients): "
    "g = dLoss/dw at the pre-step weights; (1) clip g (clipnorm: per variable "
    "g*c/max(||g||_2,c); global_clipnorm: all g times c*min(1/global_norm,1/c); "
    "clipvalue: clip(g,-c,c); at most one of the three may be set); "
    "(2) if weight_decay is set: w = w - w*wd*lr for EVERY trainable variable, "
    "biases included (decoupled; uses the same lr as the update); "
    "(3) the optimizer's update with the clipped g on the decayed w; "
    "(4) iterations += 1. lr = schedule(iterations) with iterations read "
    "BEFORE the increment (0 at the first step)."
)

RULES = {
    "SGD": "m = momentum*m - lr*g; nesterov: w = w + momentum*m - lr*g (m the NEW m); "
           "else w = w + m. momentum 0: w = w - lr*g (no buffer). "
           "lr is inside m, so a changing lr only scales new gradient terms.",
    "RMSprop": "ms = rho*ms + (1-rho)*g^2; centered: mg = rho*mg + (1-rho)*g, "
               "denom = ms - mg^2 + eps, else denom = ms + eps; "
               "inc = lr*g/sqrt(denom) (eps INSIDE the sqrt); momentum>0: "
               "mom = momentum*mom + inc, w = w - mom; else w = w - inc.",
    "Adam": "m = m + (g-m)*(1-b1); v = v + (g^2-v)*(1-b2); amsgrad: vhat = max(vhat, v), "
            "v := vhat; alpha = lr*sqrt(1-b2^t)/(1-b1^t); w = w - m*alpha/(sqrt(v)+eps) "
            "(eps OUTSIDE the sqrt and NOT bias-corrected: equals the paper's "
            "mhat/(sqrt(vhat) + eps/sqrt(1-b2^t)))",
    "Adagrad": "acc starts at initial_accumulator_value (0.1); acc = acc + g^2; "
               "w = w - lr*g/sqrt(acc+eps) (eps inside the sqrt)",
    "Adamax": "m = m + (g-m)*(1-b1); u = max(b2*u, |g|); "
              "w = w - lr*m/((1-b1^t)*(u+eps))",
    "Nadam": "once per step, before the per-variable updates: "
             "u_product = u_product*b1*(1-0.5*0.96^t) (u_product starts at 1); per variable: "
             "u_t = b1*(1-0.5*0.96^t), u_t1 = b1*(1-0.5*0.96^(t+1)), "
             "m = m + (g-m)*(1-b1), v = v + (g^2-v)*(1-b2), "
             "mhat = u_t1*m/(1-u_product*u_t1) + (1-u_t)*g/(1-u_product), "
             "vhat = v/(1-b2^t), w = w - lr*mhat/(sqrt(vhat)+eps)",
}
RULES["AdamW"] = ("AdamW is Adam with weight_decay defaulting to 0.004: the decay is "
                  "the generic decoupled step (2), w = w - w*wd*lr, BEFORE the Adam "
                  "update; it is not added to g. " + RULES["Adam"])

SCHEDULE_RULES = {
    "ExponentialDecay": "lr(s) = init * rate^(s/decay_steps); staircase: floor(s/decay_steps)",
    "PiecewiseConstantDecay": "lr(s) = values[0] if s <= b[0]; values[i] if b[i-1] < s <= b[i]; "
                              "values[-1] if s > b[-1] (boundaries inclusive on the upper side)",
    "CosineDecay": "no warmup: s' = min(s, decay_steps), lr = init*((1-alpha)*0.5*(1+cos(pi*s'/decay_steps))+alpha). "
                   "warmup: s' = min(s, decay_steps+warmup_steps); s' < warmup_steps: "
                   "lr = init + (warmup_target-init)*s'/warmup_steps; else "
                   "lr = warmup_target*((1-alpha)*0.5*(1+cos(pi*(s'-warmup_steps)/decay_steps))+alpha)",
    "InverseTimeDecay": "lr(s) = init / (1 + rate*s/decay_steps); staircase: floor(s/decay_steps)",
}

# ---------------------------------------------------------------------------
# Cases: name -> (optimizer class, kwargs as given, schedule or None, extra).
# A schedule is (class name, kwargs) and becomes the learning_rate argument.
# "contrast": kwargs changes that switch the case's feature off; the fixture
# records how far the weights after 5 steps are from that run, i.e. how
# strongly the fixture pins the feature.
# ---------------------------------------------------------------------------

CASES = []


def case(name, cls, kwargs, schedule=None, contrast=None, note=None):
    CASES.append(dict(case=name, cls=cls, kwargs=kwargs, schedule=schedule,
                      contrast=contrast, note=note))


case("sgd", "SGD", dict(learning_rate=0.1))
case("sgd_momentum", "SGD", dict(learning_rate=0.1, momentum=0.9),
     contrast=dict(momentum=0.0))
case("sgd_nesterov", "SGD", dict(learning_rate=0.1, momentum=0.9, nesterov=True),
     contrast=dict(nesterov=False))
case("rmsprop", "RMSprop", dict(learning_rate=0.01))
case("rmsprop_momentum", "RMSprop", dict(learning_rate=0.01, momentum=0.5),
     contrast=dict(momentum=0.0))
case("rmsprop_centered", "RMSprop", dict(learning_rate=0.01, centered=True),
     contrast=dict(centered=False))
case("rmsprop_eps", "RMSprop", dict(learning_rate=0.01, epsilon=1e-3),
     note="epsilon 1e-3 (not the default) so that eps placement (inside vs outside the "
          "sqrt) is far above float32 noise; with the default 1e-7 and these gradients "
          "the two placements differ by about 1e-6 in the weights.")
case("adam", "Adam", dict(learning_rate=0.05))
case("adam_amsgrad", "Adam", dict(learning_rate=0.05, beta_2=0.5, amsgrad=True),
     contrast=dict(amsgrad=False),
     note="beta_2 0.5 (not the default) so that v actually decreases and AMSGrad's "
          "max(vhat, v) differs from Adam within 5 steps; with beta_2 0.999 v only "
          "grows in the first steps and AMSGrad equals Adam.")
case("adam_eps", "Adam", dict(learning_rate=0.05, epsilon=1e-2),
     note="epsilon 1e-2 (not the default) so that eps placement and its (missing) bias "
          "correction are visible; with 1e-7 they are below float32 noise here.")
case("adamw", "AdamW", dict(learning_rate=0.05),
     contrast=dict(weight_decay=0.0))
case("adamw_wd01", "AdamW", dict(learning_rate=0.05, weight_decay=0.1),
     contrast=dict(weight_decay=0.0))
case("adagrad", "Adagrad", dict(learning_rate=0.1))
case("adamax", "Adamax", dict(learning_rate=0.05))
case("nadam", "Nadam", dict(learning_rate=0.05))
case("sgd_clipnorm", "SGD", dict(learning_rate=0.1, clipnorm=0.25),
     contrast=dict(clipnorm=None),
     note="clipnorm 0.25 instead of 1.0: no variable's gradient norm reaches 1.0 on this "
          "model (see grad_norms_step1); at 0.25 out.kernel and out.bias are clipped at "
          "step 1 and hidden.kernel and hidden.bias are not.")
case("adam_clipnorm", "Adam", dict(learning_rate=0.05, clipnorm=0.25),
     contrast=dict(clipnorm=None),
     note="clipnorm 0.25 (see sgd_clipnorm). Adam is nearly invariant to a constant "
          "scale of one variable's gradient, so this fixture pins clipping only weakly "
          "(see contrast); sgd_clipnorm pins the rule.")
case("sgd_clipvalue", "SGD", dict(learning_rate=0.1, clipvalue=0.01),
     contrast=dict(clipvalue=None))
case("adam_global_clipnorm", "Adam", dict(learning_rate=0.05, global_clipnorm=0.5),
     contrast=dict(global_clipnorm=None),
     note="Adam is nearly invariant to a scale common to all gradients, so this fixture "
          "pins global clipping only weakly (see contrast); sgd_global_clipnorm pins it.")
case("sgd_global_clipnorm", "SGD", dict(learning_rate=0.1, global_clipnorm=0.5),
     contrast=dict(global_clipnorm=None))
case("sgd_weight_decay", "SGD", dict(learning_rate=0.1, weight_decay=0.01),
     contrast=dict(weight_decay=None))
case("adam_weight_decay", "Adam", dict(learning_rate=0.05, weight_decay=0.01),
     contrast=dict(weight_decay=None))
case("sched_exponential", "SGD", {},
     schedule=("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=2, decay_rate=0.5)))
case("sched_exponential_staircase", "SGD", {},
     schedule=("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=2,
                                        decay_rate=0.5, staircase=True)))
case("sched_piecewise", "SGD", {},
     schedule=("PiecewiseConstantDecay", dict(boundaries=[1, 3], values=[0.1, 0.05, 0.01])))
case("sched_cosine", "SGD", {},
     schedule=("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=4, alpha=0.1)))
case("sched_cosine_warmup", "SGD", {},
     schedule=("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=4, alpha=0.1,
                                   warmup_target=0.2, warmup_steps=2)))
case("sched_inverse_time", "SGD", {},
     schedule=("InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=1, decay_rate=0.5)))
case("sched_sgd_momentum_wd", "SGD", dict(momentum=0.9, weight_decay=0.01),
     schedule=("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=2, decay_rate=0.5)),
     note="A schedule with momentum and weight decay: Keras keeps lr INSIDE the momentum "
          "buffer (m = momentum*m - lr_t*g), which differs from w += lr_t*(momentum*m - g) "
          "once lr changes; the decay uses the scheduled lr too.")

# ---------------------------------------------------------------------------


def build_model():
    ns = {"keras": keras}
    exec(MODEL_CODE, ns)
    return ns["model"]


def data():
    rng = np.random.default_rng(seed_for("optim", "weights"))
    model = build_model()
    init = [rng.uniform(-0.5, 0.5, tuple(v.shape)).astype(np.float32) for v in model.weights]
    x = np.random.default_rng(seed_for("optim", "inputs")).uniform(-1, 1, (BATCH, 4)).astype(np.float32)
    y = np.random.default_rng(seed_for("optim", "targets")).uniform(-1, 1, (BATCH, 2)).astype(np.float32)
    return init, x, y


def var_name(v):
    return v.path.replace("/", ".")


def make_optimizer(cls, kwargs, schedule):
    kw = dict(kwargs)
    if schedule is not None:
        kw["learning_rate"] = getattr(keras.optimizers.schedules, schedule[0])(**schedule[1])
    return getattr(keras.optimizers, cls)(**kw)


def train(cls, kwargs, schedule, init, x, y):
    model = build_model()
    for v, val in zip(model.weights, init):
        v.assign(val)
    opt = make_optimizer(cls, kwargs, schedule)
    model.compile(optimizer=opt, loss="mse")
    lrs, losses, snaps = [], [], []
    for step in range(STEPS):
        assert int(opt.iterations) == step
        lrs.append(float(np.float32(opt.learning_rate)))
        logs = model.train_on_batch(x, y, return_dict=True)
        losses.append(float(np.float32(logs["loss"])))
        snaps.append([np.asarray(v.numpy(), np.float32) for v in model.weights])
    assert int(opt.iterations) == STEPS
    return model, opt, lrs, losses, snaps


def grad_norms(init, x, y):
    """Unclipped gradient norms at the initial weights (= step 1's gradients)."""
    model = build_model()
    for v, val in zip(model.weights, init):
        v.assign(val)
    tv = [v.value for v in model.trainable_variables]

    def loss_fn(tv):
        pred, _ = model.stateless_call(tv, [], x, training=True)
        return keras.losses.MeanSquaredError()(y, pred)

    g = [np.asarray(a, np.float64) for a in jax.grad(loss_fn)(tv)]
    names = [var_name(v) for v in model.trainable_variables]
    f = lambda v: f32_list([v])[0]  # noqa: E731
    return {
        "per_variable": {n: f(np.linalg.norm(a)) for n, a in zip(names, g)},
        "global": f(np.sqrt(sum(float((a ** 2).sum()) for a in g))),
        "max_abs": {n: f(np.abs(a).max()) for n, a in zip(names, g)},
        "min_abs": {n: f(np.abs(a).min()) for n, a in zip(names, g)},
    }


def clip_summary(kwargs, norms):
    """Which variables / elements step 1 actually clips (from the norms above)."""
    if kwargs.get("clipnorm"):
        c = kwargs["clipnorm"]
        return {"clipnorm": c, "clipped_variables": sorted(
            n for n, v in norms["per_variable"].items() if v > c)}
    if kwargs.get("global_clipnorm"):
        c = kwargs["global_clipnorm"]
        return {"global_clipnorm": c, "clipped": norms["global"] > c,
                "scale": f32_list([min(1.0, c / norms["global"])])[0]}
    if kwargs.get("clipvalue"):
        c = kwargs["clipvalue"]
        return {"clipvalue": c,
                "variables_with_clipped_elements": sorted(
                    n for n, v in norms["max_abs"].items() if v > c),
                "variables_with_unclipped_elements": sorted(
                    n for n, v in norms["min_abs"].items() if v <= c)}
    return None


def resolved_config(opt):
    drop = {"name", "use_ema", "ema_momentum", "ema_overwrite_frequency",
            "loss_scale_factor", "gradient_accumulation_steps"}
    cfg = {k: v for k, v in opt.get_config().items() if k not in drop}
    lr = opt._learning_rate
    if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
        cfg["learning_rate"] = {"class": type(lr).__name__, "config": lr.get_config()}
    return cfg


def run_case(spec, init, x, y):
    cls, kwargs, schedule = spec["cls"], spec["kwargs"], spec["schedule"]
    model, opt, lrs, losses, snaps = train(cls, kwargs, schedule, init, x, y)
    names = [var_name(v) for v in model.weights]
    assert all(v.trainable for v in model.weights)
    norms = grad_norms(init, x, y)

    args = dict(kwargs)
    if schedule is not None:
        args["learning_rate"] = {"class": schedule[0], "args": schedule[1]}
    notes = COMMON + " " + cls + ": " + RULES[cls]
    if schedule is not None:
        notes += " Schedule " + schedule[0] + ": " + SCHEDULE_RULES[schedule[0]]
    if spec["note"]:
        notes += " Case: " + spec["note"]

    fx = {
        "case": spec["case"],
        "generator": GENERATOR,
        "keras": keras.__version__,
        "jax": jax.__version__,
        "code": MODEL_CODE,
        "loss": "mse",
        "inputs": {"shape": list(x.shape), "data": f32_list(x)},
        "targets": {"shape": list(y.shape), "data": f32_list(y)},
        "weights": [{"name": n, "shape": list(w.shape), "data": f32_list(w)}
                    for n, w in zip(names, init)],
        "optimizer": {"class": cls, "args": args, "config": resolved_config(opt)},
        "steps": STEPS,
        "learning_rates": f32_list(lrs),
        "losses": f32_list(losses),
        "weights_after": [{n: f32_list(w) for n, w in zip(names, snap)} for snap in snaps],
        "grad_norms_step1": norms,
    }
    cs = clip_summary(kwargs, norms)
    if cs is not None:
        fx["clipping_step1"] = cs
    if spec["contrast"] is not None:
        kw2 = dict(kwargs)
        kw2.update(spec["contrast"])
        kw2 = {k: v for k, v in kw2.items() if v is not None}
        _, _, _, _, snaps2 = train(cls, kw2, schedule, init, x, y)
        diff = max(float(np.abs(a - b).max()) for a, b in zip(snaps[-1], snaps2[-1]))
        fx["contrast"] = {"changed_args": spec["contrast"],
                          "max_abs_weight_diff_after_5_steps": f32_list([diff])[0]}
    fx["notes"] = notes
    return fx


def to_json(fx):
    """One line per top-level key and per list entry of weights/weights_after."""
    c = lambda o: json.dumps(o, separators=(",", ":"), allow_nan=False)  # noqa: E731
    lines = []
    for k, v in fx.items():
        if k in ("weights", "weights_after"):
            inner = ",\n".join("    " + c(e) for e in v)
            lines.append(f'  {json.dumps(k)}: [\n{inner}\n  ]')
        else:
            lines.append(f"  {json.dumps(k)}: {c(v)}")
    return "{\n" + ",\n".join(lines) + "\n}"


def main(argv):
    wanted = set(argv)
    names = [c["case"] for c in CASES]
    assert len(names) == len(set(names))
    unknown = wanted - set(names)
    if unknown:
        sys.exit(f"unknown case(s): {sorted(unknown)}")
    os.makedirs(OUT_DIR, exist_ok=True)
    init, x, y = data()
    for spec in CASES:
        if wanted and spec["case"] not in wanted:
            continue
        fx = run_case(spec, init, x, y)
        text = to_json(fx)
        assert json.loads(text) == json.loads(json.dumps(fx))
        with open(os.path.join(OUT_DIR, spec["case"] + ".json"), "w") as f:
            f.write(text + "\n")
        extra = ""
        if "contrast" in fx:
            extra = f" contrast={fx['contrast']['max_abs_weight_diff_after_5_steps']:.3g}"
        print(f"{spec['case']:28s} {len(text):6d} B lr={fx['learning_rates']} "
              f"loss={fx['losses'][0]:.5f}->{fx['losses'][-1]:.5f}{extra}")


if __name__ == "__main__":
    main(sys.argv[1:])
