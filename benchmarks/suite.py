"""Does the one-liner cure collapse-then-plateau? The benchmark suite.

Four problems (`benchmarks/problems.py`), each with one dominant
unnormalised regression head and small heads, 3 seeds, 30 epochs, batch 48,
AdamW. Every run of a seed starts from the same initial weights. Runs:

  baseline           AdamW 2e-4 constant, equal loss weights
  keras-cosine       Keras's CosineDecay with a one-epoch warmup to 2e-4
  keras-plateau      2e-4 with Keras's ReduceLROnPlateau(val_loss, 0.5, 2)
  multiphase         callbacks=preset("multiphase"): the default users get
                     (peak from a range test at train begin)
  multiphase+dwa     the same with balance="dwa" (Dynamic Weight Average)
  multiphase+magnitude  ... with balance="magnitude" (equal contributions)
  multiphase@5e-5    preset("multiphase", peak_lr=5e-5): the documented
                     absolute recipe, 1e-5 / 5e-5 / 1e-6
  constant@peak      AdamW at the range test's rate, constant, no callbacks
  one_cycle@peak     preset("one_cycle", max_lr=<the range test's rate>)
  wsd@peak           preset("wsd", peak_lr=<the range test's rate>)
  cosine@peak        Keras's CosineDecay, one-epoch warmup to the range
                     test's rate, decaying to 0 at the last step
  multiphase+headinit  an experiment: before the preset, each head's last
                     layer is set from a sample of the training data
                     (regression: bias at the target's mean; classifier:
                     logits centred, unit sd, bias at the class prior)
  multiphase+headinit@peak  the same, the range test taken before the
                     initialisation (the default's peak)
  multiphase+headbias@peak  ... the regression heads' biases only
  multiphase+headlogit@peak  ... the classifiers' logits only
  multiphase+sum     experiments (JAX only, gradient_balance.py): one
  multiphase+normalized  gradient per head, combined on the trunk: summed;
  multiphase+protected  small heads rescaled to the dominant's norm; the
                     same without the part that conflicts with the dominant
  multiphase+stable  stable_heads(model): sigmoid / softmax heads that keep
                     their gradient when saturated (as on TensorFlow)
  multiphase+stable+headlogit  the same, then the classifiers' logits
                     initialised as in headlogit@peak
  multiphase+inputs  the levers of scaling apart (issue 24's ablation):
  multiphase+targets inputs standardised only (an adapted Normalization
  multiphase+inverse before the model); targets only (scale_outputs without
                     x); loss weights 1 / each head's initial loss only
  multiphase+scaling scale_outputs(model, y, x=x) (standardised heads and
                     inputs, predictions in original units) + the preset
  multiphase+heads   normalize_heads(model, y): a BatchNormalization before
                     each small head, stable sigmoid / softmax; + the preset
  multiphase+heads+x normalize_heads(model, y, x=x, units="raw"): the same, each small
                     regression head's bias at its target's mean, and each
                     small head's own path from the standardised inputs (a
                     hidden ReLU layer, then a map that starts at zero)
                     added to its normalised features; + the preset
  multiphase+heads+folded  experiments on multiphase+heads: the inputs
                     standardised with the first layer's weights rescaled
                     to match (the same function, Adam steps in standard
                     units); multiphase+heads+centred(_bn): the dominant
                     head's output times its target's sd plus its mean (and
                     a BatchNormalization before it); multiphase+heads+skip:
                     the small heads' logits plus a linear map of the
                     standardised inputs (the shortcut added after the head,
                     where normalize_heads(x=) adds it before);
                     multiphase+heads+xlinear: normalize_heads(x=) with a
                     linear shortcut, no hidden layer
  fine_tune          preset("fine_tune"): the heads alone with the trunk
                     frozen (5%), then the whole model and the multiphase
                     shape, at the whole model's range-test peak; the trunk
                     by its "auto" rule
  fine_tune@trunk10  an experiment: the same with the trunk at a tenth of
                     the rate once unfrozen (trunk_ratio=0.1, fastai's
                     discriminative rates)
  wsd@1e-3           experiments: preset("wsd"), preset("one_cycle") and
  one_cycle@1e-3     preset("sgdr") at the peak they shipped before
  sgdr@1e-3          `auto` (1e-3, AdamW(1e-3)); sgdr@peak: sgdr at the
  sgdr@peak          range test's rate
  sf_adamw           what users pick instead of a schedule (peers.py):
  sf_adamw@peak      Schedule-Free AdamW at its defaults (lr 0.0025) and
  prodigy            at the range test's rate, validated at its averaged
                     point x; Prodigy at its defaults (lr 1.0)
  multiphase+heads+x+inputs  experiments on the units (issue 35): the
  multiphase+heads+x+zdom    trunk's float inputs standardised per channel
  multiphase+heads+x+inputs+zdom  (a fixed Normalization before the
  multiphase+heads+x+centred         model); the dominant head in z-units
  multiphase+heads+x+inputs+centred
                     (scale_outputs on it alone: its output times sd plus
                     mean, its loss weight 1 / sd ** 2); centred: the same
                     output, the loss left in original units; each with
                     normalize_heads(x=) for the small heads
  multiphase+units   normalize_heads(model, y, x=x, units="standard"): the
                     package's form of +inputs+centred (every primary
                     regression head centred)
  multiphase+auto    normalize_heads(model, y, x=x): the default,
                     units="auto" ("standard" unless a float input reaches
                     a nested backbone; then "raw", the two lines)
  multiphase+auto+bn experiments: the dominant head centred and reading
  multiphase+heads+x+centred_bn  its features through a BatchNormalization,
                     the float inputs standardised as units="auto" does
                     (+auto+bn) or never (+centred_bn)

Reported per problem, mean +- sd over seeds: the total validation loss (the
sum of the unweighted component losses, in original units, so runs with
other loss weights compare), each component's loss, each head's metric
(MAE in original units or accuracy), the peak the range test found, and the
problems `keras_multiphase.diagnose` finds. A verdict line checks the
issue's bar for the default preset: total and dominant-head error below the
baseline's mean, no small head worse than the baseline's mean by more than
one baseline sd.

    KERAS_BACKEND=jax python benchmarks/suite.py [--seeds 3] [--epochs 30]
        [--problems collapse cancer finetune noisy digits] [--runs ...]
        [--variant 'NAME={"controlled": 0.1, "restarts.min_ratio": 0.5}' ...]
        [--json results.json] [--out benchmarks/suite.png]
        [--tradeoff benchmarks/tradeoff.png]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
import warnings

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from problems import BATCH, HELD_OUT, PROBLEMS  # noqa: E402
from problems_arch import ARCHITECTURES  # noqa: E402
from problems_holdout import HOLDOUT  # noqa: E402

HELD_OUT = {**HELD_OUT, **ARCHITECTURES, **HOLDOUT}

import keras_multiphase as km  # noqa: E402

RUNS = (
    "baseline",
    "keras-cosine",
    "keras-plateau",
    "multiphase",
    "multiphase+dwa",
    "multiphase+magnitude",
    "multiphase@5e-5",
    "constant@peak",
    "one_cycle@peak",
    "wsd@peak",
    "cosine@peak",
    "multiphase+scaling",
    "multiphase+inputs",
    "multiphase+targets",
    "multiphase+inverse",
    "multiphase+heads",
    "multiphase+heads+x",
    "fine_tune",
)
# Measured once, not run by default (--runs names them).
EXPERIMENTS = (
    "multiphase+headinit",
    "multiphase+headinit@peak",
    "multiphase+headbias@peak",
    "multiphase+headlogit@peak",
    "fine_tune@trunk10",
    "multiphase+sum",
    "multiphase+normalized",
    "multiphase+protected",
    "multiphase+stable",
    "multiphase+stable+headlogit",
    "multiphase+bn_cls",
    "multiphase+ln_cls",
    "multiphase+bn_small",
    "multiphase+bn_all",
    "multiphase+stable+bn_cls",
    "multiphase+stable+bn_small",
    "multiphase+stable+bn_small_g10",
    "multiphase+stable+bn_small_g100",
    "multiphase+stable+bn_small_gsd",
    "multiphase+heads+inputs",
    "fine_tune+heads",
    "multiphase+heads+plainpeak",
    "fine_tune@trunk10+heads",
    "fine_tune+heads+x",
    "multiphase+heads+centred",
    "multiphase+heads+centred_bn",
    "multiphase+heads+x+centred",
    "multiphase+heads+x+zdom",
    "multiphase+heads+x+inputs",
    "multiphase+heads+x+inputs+zdom",
    "multiphase+heads+x+inputs+centred",
    "multiphase+units",
    "multiphase+auto",
    "multiphase+auto+bn",
    "multiphase+heads+x+centred_bn",
    "multiphase+heads+folded",
    "multiphase+heads+skip",
    "multiphase+heads+xlinear",
    "wsd@1e-3",
    "one_cycle@1e-3",
    "sgdr@1e-3",
    "sgdr@peak",
)
# Runs named on the command line (--variant): preset("multiphase", **overrides);
# "preset" names another, "units" adds normalize_heads(model, y, x=x, units=)
# ("auto+bn": the multiphase+auto+bn experiment).
VARIANTS: dict[str, dict] = {}
# What users pick instead of a schedule (benchmarks/peers.py): at their
# defaults, and Schedule-Free AdamW at the range test's peak.
PEERS = ("sf_adamw", "sf_adamw@peak", "prodigy")
# The peers of the default's shape, each at the peak its range test finds.
AT_PEAK = ("constant@peak", "one_cycle@peak", "wsd@peak", "cosine@peak")
RATE = 2e-4


def _steps(x):
    return int(np.ceil(len(x) / BATCH))


def peer_setup(run, problem, model, x, y):
    """(model, optimizer, callbacks, loss_weights, peak) of a peer optimizer."""
    import peers

    if run == "prodigy":
        return model, peers.Prodigy(), [], None, None
    peak = range_test_peak(problem, model, x, y) if run.endswith("@peak") else None
    optimizer = peers.ScheduleFreeAdamW(peak) if peak else peers.ScheduleFreeAdamW()
    return model, optimizer, [peers.ScheduleFreeEval()], None, peak


def setup(run, problem, model, x, y, epochs):
    """(model, optimizer, callbacks, loss_weights, peak) for one run."""
    if run in PEERS:
        return peer_setup(run, problem, model, x, y)
    callbacks, weights, peak = [], None, None
    rate = RATE
    if run == "keras-cosine":
        steps = _steps(x)
        rate = keras.optimizers.schedules.CosineDecay(
            0.0, (epochs - 1) * steps, warmup_target=RATE, warmup_steps=steps
        )
    elif run == "keras-plateau":
        callbacks = [keras.callbacks.ReduceLROnPlateau("val_loss", 0.5, 2)]
    elif run in VARIANTS:
        overrides = dict(VARIANTS[run])
        name_or_path = overrides.pop("preset", "multiphase")
        units = overrides.pop("units", None)  # with normalize_heads(x=)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            callbacks = km.preset(name_or_path, **overrides)
        if units == "auto+bn":
            model = centred_bn_variant("multiphase+auto+bn", problem, model, x, y)
        elif units is not None:
            model = km.normalize_heads(model, y, x=x, units=units)
    elif run.startswith("fine_tune"):
        overrides = {"trunk_ratio": 0.1} if "@trunk10" in run else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            callbacks = km.preset("fine_tune", **overrides)  # trunk: auto rule
        if run.endswith("+heads"):
            model = km.normalize_heads(model, y)
        if run.endswith("+heads+x"):
            model = km.normalize_heads(model, y, x=x, units="raw")
    elif run.startswith("multiphase"):
        overrides = {"peak_lr": 5e-5} if run == "multiphase@5e-5" else {}
        if run in ("multiphase+dwa", "multiphase+magnitude"):
            overrides = {"balance": run.split("+")[1]}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            callbacks = km.preset("multiphase", **overrides)
        if run.split("+")[-1] in ("sum", "normalized", "protected"):
            from gradient_balance import protected

            mode = run.split("+")[-1]
            model = protected(model, problem.losses, problem.dominant, mode)
        if "+stable" in run:
            km.stable_heads(model)
        if run == "multiphase+stable+headlogit":  # after the range test
            peak = range_test_peak(problem, model, x, y)
            callbacks = km.preset("multiphase", peak_lr=peak)
            init_heads(model, x, y, regression=False)
        if run == "multiphase+headinit":
            init_heads(model, x, y)
        elif run.endswith("@peak"):  # headinit@peak, headbias@peak
            peak = range_test_peak(problem, model, x, y)  # before the init
            callbacks = km.preset("multiphase", peak_lr=peak)
            init_heads(
                model,
                x,
                y,
                classifiers=not run.startswith("multiphase+headbias"),
                regression=not run.startswith("multiphase+headlogit"),
            )
        tag = run.split("+")[-1]
        if tag.split("_g")[0] in ("bn_cls", "ln_cls", "bn_small", "bn_all"):
            model = normalized_heads(model, problem, tag)
        if run in ("multiphase+heads", "multiphase+heads+inputs"):
            model = km.normalize_heads(model, y)
        if run == "multiphase+heads+plainpeak":  # the range test before
            peak = range_test_peak(problem, model, x, y)
            callbacks = km.preset("multiphase", peak_lr=peak)
            model = km.normalize_heads(model, y)
        if run == "multiphase+heads+inputs":
            model = standardised_inputs(model, x)
        if run == "multiphase+heads+x":
            model = km.normalize_heads(model, y, x=x, units="raw")
        if run == "multiphase+heads+xlinear":
            model = linear_shortcuts(model, y, x)
        if run == "multiphase+heads+skip":
            model = input_skips(km.normalize_heads(model, y), problem, x)
        if run == "multiphase+heads+folded":
            model = folded_inputs(km.normalize_heads(model, y), x)
        if run == "multiphase+units":  # the package's units="standard"
            model = km.normalize_heads(model, y, x=x, units="standard")
        if run == "multiphase+auto":  # the default: units="auto"
            model = km.normalize_heads(model, y, x=x)
        if run in ("multiphase+auto+bn", "multiphase+heads+x+centred_bn"):
            model = centred_bn_variant(run, problem, model, x, y)
        if run.startswith("multiphase+heads+x+") and "centred_bn" not in run:
            model, weights = scaled_variant(run, problem, model, x, y)
        if run.startswith("multiphase+heads+centred"):
            model = centred_dominant(model, problem, y, run.endswith("_bn"))
        if run == "multiphase+scaling":
            scaled = km.scale_outputs(model, y, x=x)
            model, weights = scaled.model, scaled.loss_weights
        elif run == "multiphase+targets":
            scaled = km.scale_outputs(model, y)
            model, weights = scaled.model, scaled.loss_weights
        elif run == "multiphase+inputs":
            model = standardised_inputs(model, x)
        elif run == "multiphase+inverse":
            weights = inverse_initial_losses(problem, model, x, y)
    elif run in AT_PEAK or run == "sgdr@peak":
        peak = range_test_peak(problem, model, x, y)
        rate, callbacks = at_peak(run, peak, _steps(x), epochs)
    elif run.endswith("@1e-3"):  # a peak preset at the rate it once shipped
        rate, callbacks = at_peak(run.replace("@1e-3", "@peak"), 1e-3, 0, epochs)
    return model, keras.optimizers.AdamW(rate), callbacks, weights, peak


def _moments(x):
    """Per-feature (per-channel: the last axis) mean and sd; a constant
    feature's sd is 1."""
    axes = tuple(range(x.ndim - 1))
    mean, sd = x.mean(axes), x.std(axes)
    if os.environ.get("SD_FLOOR") == "median":  # an experiment: no feature
        sd = np.maximum(sd, np.median(sd))  # amplified past the median's scale
    return mean, np.where(sd > 1e-6 * max(sd.max(), 1e-12), sd, 1.0)


def scaled_variant(run, problem, model, x, y):
    """(model, loss weights) for the experiments on normalize_heads(x=):
    `+inputs` the trunk's float inputs standardised (per channel), `+zdom`
    the dominant head in z-units (scale_outputs on it alone)."""
    inputs = "+inputs" in run and np.issubdtype(x.dtype, np.floating)
    mean, sd = _moments(x) if inputs else (0.0, 1.0)
    model = km.normalize_heads(
        model, y, x=(x - mean) / sd if inputs else x, units="raw"
    )
    weights = None
    if run.endswith("+zdom"):
        scaled = km.scale_outputs(model, y, outputs=[problem.dominant])
        model, weights = scaled.model, scaled.loss_weights
    if run.endswith("+centred"):  # the same units, the loss in original ones
        model = centred_dominant(model, problem, y, False)
    return (standardised_inputs(model, x) if inputs else model), weights


def centred_bn_variant(run, problem, model, x, y):
    """An experiment: normalize_heads(x=), the dominant head centred and
    reading its features through a BatchNormalization; with `+auto+bn` the
    float inputs standardised unless a nested backbone reads them (as
    units="auto"), with `+heads+x+centred_bn` never."""
    from keras_multiphase.units import backbone_inputs

    inputs = (
        run == "multiphase+auto+bn"
        and np.issubdtype(x.dtype, np.floating)
        and not backbone_inputs(model)
    )
    mean, sd = _moments(x) if inputs else (0.0, 1.0)
    model = km.normalize_heads(
        model, y, x=(x - mean) / sd if inputs else x, units="raw"
    )
    model = centred_dominant(model, problem, y, True)
    return standardised_inputs(model, x) if inputs else model


def standardised_inputs(model, x):
    """`model` behind a `Normalization` set to the training inputs' moments
    (a constant feature centred, not divided by epsilon)."""
    mean, sd = _moments(x)
    norm = keras.layers.Normalization(mean=mean, variance=sd**2)
    inputs = keras.Input(x.shape[1:])
    return keras.Model(inputs, model(norm(inputs)))


class GradientBoost(keras.layers.Layer):
    """Identity forward; the gradient to the trunk times g (or the
    features' batch sd, "sd")."""

    def __init__(self, g, **kwargs):
        super().__init__(**kwargs)
        self.g = g

    def call(self, h):
        ops = keras.ops
        if self.g == "sd":
            g = ops.stop_gradient(ops.sqrt(ops.var(h, axis=0) + 1e-3))
        else:
            g = float(self.g)
        return ops.stop_gradient(h) + g * (h - ops.stop_gradient(h))


def normalized_heads(model, problem, tag):
    """An experiment: a normalisation between the trunk and chosen heads."""

    def chosen(layer):
        act = getattr(layer.activation, "__name__", "linear").removeprefix("stable_")
        if tag.endswith("cls"):
            return act in ("sigmoid", "softmax")
        if "small" in tag:
            return layer.name != problem.dominant
        return True

    heads = {n for n in model.output_names if chosen(model.get_layer(n))}

    def call(layer, *args, **kwargs):
        if layer.name in heads:
            norm = (
                keras.layers.LayerNormalization()
                if tag.startswith("ln")
                else keras.layers.BatchNormalization()
            )
            h = args[0]
            if "_g" in tag:
                h = GradientBoost(tag.split("_g")[1])(h)
            return layer(norm(h), *args[1:], **kwargs)
        return layer(*args, **kwargs)

    return keras.models.clone_model(
        model, clone_function=lambda layer: layer, call_function=call
    )


def _first_dense(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found = _first_dense(layer)
            if found is not None:
                return found
        elif isinstance(layer, keras.layers.Dense):
            return layer
    return None


def folded_inputs(model, x):
    """An experiment: standardised inputs with the first layer's weights
    rescaled to match, so the model computes the same function (pretrained
    weights kept) while Adam steps every input feature in its own units."""
    mean, sd = _moments(x)
    dense = _first_dense(model)
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel * sd[:, None], bias + mean @ kernel])
    norm = keras.layers.Normalization(mean=mean, variance=sd**2, name="x_norm")
    inputs = keras.Input(x.shape[1:])
    return keras.Model(inputs, model(norm(inputs)))


def input_skips(model, problem, x):
    """An experiment: each small head's pre-activation plus a linear map
    (zero at the start) of the standardised inputs."""
    mean, sd = _moments(x)
    inputs = keras.Input(x.shape[1:])
    norm = keras.layers.Normalization(mean=mean, variance=sd**2)(inputs)
    activations = {}
    for name in model.output_names:
        layer = model.get_layer(name)
        if name != problem.dominant:
            activations[name] = layer.activation
            layer.activation = keras.activations.linear
    raw = model(inputs)
    out = {}
    for name, tensor in raw.items():
        if name in activations:
            skip = keras.layers.Dense(tensor.shape[-1], kernel_initializer="zeros")
            tensor = keras.layers.Add()([tensor, skip(norm)])
            tensor = keras.layers.Activation(activations[name])(tensor)
        out[name] = tensor
    return keras.Model(inputs, out)


def linear_shortcuts(model, y, x):
    """An experiment: normalize_heads(x=) with a linear shortcut (no hidden
    layer) from the standardised inputs to each small head's features."""
    from keras_multiphase import head_norm

    tower = head_norm._head_input

    def linear(layer, features, shortcut):
        h = keras.layers.BatchNormalization(
            momentum=head_norm._MOMENTUM, name=f"{layer.name}_input_norm"
        )(features)
        direct = keras.layers.Dense(
            features.shape[-1], use_bias=False, kernel_initializer="zeros"
        )(shortcut)
        return keras.layers.Add()([h, direct])

    head_norm._head_input = linear
    try:
        return km.normalize_heads(model, y, x=x)
    finally:
        head_norm._head_input = tower


def centred_dominant(model, problem, y, norm):
    """An experiment: the dominant head's output times its target's sd plus
    its mean (a fixed `Rescaling`), the loss left in original units; with
    `norm`, a `BatchNormalization` before the dominant head too."""
    target = np.asarray(y[problem.dominant], "float64")
    rescale = keras.layers.Rescaling(
        float(target.std()), float(target.mean()), name=f"{problem.dominant}_units"
    )

    def call(layer, *args, **kwargs):
        if layer.name != problem.dominant:
            return layer(*args, **kwargs)
        h = keras.layers.BatchNormalization()(args[0]) if norm else args[0]
        return rescale(layer(h, *args[1:], **kwargs))

    return keras.models.clone_model(
        model, clone_function=lambda layer: layer, call_function=call
    )


def inverse_initial_losses(problem, model, x, y) -> dict:
    """Loss weights 1 / each head's unweighted loss before training."""
    model.compile(optimizer="sgd", loss=problem.losses)
    before = model.evaluate(x, y, verbose=0, return_dict=True, batch_size=256)
    return {n: 1.0 / max(before[f"{n}_loss"], 1e-12) for n in problem.losses}


def init_heads(model, x, y, samples=2048, classifiers=True, regression=True):
    """Data-dependent initialisation of each output's last Dense layer,
    from the first `samples` training samples (an experiment); with
    `classifiers=False` only the regression heads' biases, with
    `regression=False` only the classifiers' logits."""
    names = list(model.output_names)
    take = lambda v: v[:samples]  # noqa: E731
    xs = keras.tree.map_structure(take, x)
    for name in names:
        layer = model.get_layer(name)
        features = keras.Model(model.inputs, layer.input)(xs)
        kernel, bias = (np.asarray(w, "float64") for w in layer.get_weights())
        h = np.asarray(keras.ops.convert_to_numpy(features), "float64")
        z = h @ kernel + bias
        target = np.asarray(y[name][:samples], "float64")
        activation = getattr(layer.activation, "__name__", "linear")
        activation = activation.removeprefix("stable_")
        is_classifier = activation in ("sigmoid", "softmax")
        if not (classifiers if is_classifier else regression):
            continue
        if activation in ("sigmoid", "softmax"):
            scale = max(z.std(), 1e-12)
            kernel = kernel / scale
            if activation == "sigmoid":
                p = np.clip(target.mean(), 1e-3, 1 - 1e-3)
                prior = np.full(bias.shape, np.log(p / (1 - p)))
            else:
                counts = np.bincount(target.astype(int).ravel(), minlength=len(bias))
                prior = np.log(np.maximum(counts / counts.sum(), 1e-3))
            bias = prior - (h @ kernel).mean(0)
        else:
            bias = bias + target.mean(0) - z.mean(0)
        layer.set_weights([kernel.astype("float32"), bias.astype("float32")])


def range_test_peak(problem, model, x, y) -> float:
    """The rate the default's range test finds for this model and data
    (`find_lr` leaves the model as it found it)."""
    model.compile(optimizer=keras.optimizers.AdamW(RATE), loss=problem.losses)
    result = km.find_lr(model, x, y, batch_size=BATCH, verbose=0)
    return result.suggestion if result.conclusive else RATE


def at_peak(run, peak, steps, epochs):
    """(rate, callbacks) of a peer schedule at `peak`."""
    if run == "one_cycle@peak":
        return peak, km.preset("one_cycle", max_lr=peak)
    if run == "wsd@peak":
        return peak, km.preset("wsd", peak_lr=peak)
    if run == "sgdr@peak":
        return peak, km.preset("sgdr", peak_lr=peak)
    if run == "cosine@peak":
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, (epochs - 1) * steps, warmup_target=peak, warmup_steps=steps
        )
        return schedule, []
    return peak, []


def one_run(run, problem, seed, data, epochs):
    x, y, xv, yv = data
    keras.utils.set_random_seed(seed)
    model = problem.model(seed)
    model, optimizer, callbacks, weights, peak = setup(
        run, problem, model, x, y, epochs
    )
    model.compile(
        optimizer=optimizer,
        loss=problem.losses,
        loss_weights=weights,
        metrics=problem.metrics,
    )
    names = list(problem.losses)
    before = model.evaluate(xv, yv, verbose=0, return_dict=True, batch_size=256)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        history = model.fit(
            x,
            y,
            batch_size=BATCH,
            epochs=epochs,
            validation_data=(xv, yv),
            callbacks=callbacks,
            verbose=0,
        )
    seconds = time.perf_counter() - start
    logs = history.history
    parts = {n: np.asarray(logs[f"val_{n}_loss"], "float64") for n in names}
    total = sum(parts.values())
    initial = sum(before[f"{n}_loss"] for n in names)
    metrics = {}
    for n in names:
        for m in problem.metrics[n]:
            metrics[f"{n} {m}"] = float(logs[f"val_{n}_{m}"][-1])
    curve = {"val_loss": list(total)}
    curve.update({f"val_{n}_loss": list(v) for n, v in parts.items()})
    if "learning_rate" in logs:
        curve["learning_rate"] = logs["learning_rate"]
    report = km.diagnose(curve, monitor="val_loss", initial_loss=initial)
    if "peak_lr" in logs:
        peak = float(logs["peak_lr"][0])
    return {
        "initial": float(initial),
        "total": [float(v) for v in total],
        "final": {n: float(v[-1]) for n, v in parts.items()},
        "metrics": metrics,
        "peak": peak,
        "problems": list(report.problems),
        "seconds": seconds,
    }


def summary(values) -> str:
    values = np.asarray([v for v in values if v is not None], dtype="float64")
    if not len(values):
        return "-"
    mean, sd = values.mean(), values.std(ddof=1) if len(values) > 1 else 0.0
    if abs(mean) >= 100:
        return f"{mean:,.0f} +- {sd:,.0f}"
    return f"{mean:.4g} +- {sd:.2g}"


def _stats(values):
    values = np.asarray(values, "float64")
    return values.mean(), (values.std(ddof=1) if len(values) > 1 else 0.0)


def verdict(problem, results, run="multiphase") -> list[str]:
    """The issue's bar for `run` against the baseline on one problem."""
    if run not in results or "baseline" not in results:
        return []
    base, mine = results["baseline"], results[run]
    lines = []
    b, m = (
        _stats([r["total"][-1] for r in base]),
        _stats([r["total"][-1] for r in mine]),
    )
    lines.append(
        f"total {m[0]:.4g} vs baseline {b[0]:.4g}: {'PASS' if m[0] < b[0] else 'FAIL'}"
    )
    key = f"{problem.dominant} mae"
    b, m = (
        _stats([r["metrics"][key] for r in base]),
        _stats([r["metrics"][key] for r in mine]),
    )
    lines.append(f"{key} {m[0]:.4g} vs {b[0]:.4g}: {'PASS' if m[0] < b[0] else 'FAIL'}")
    for name in problem.losses:
        if name == problem.dominant:
            continue
        for metric in problem.metrics[name]:
            key = f"{name} {metric}"
            b = _stats([r["metrics"][key] for r in base])
            m = _stats([r["metrics"][key] for r in mine])
            worse = m[0] < b[0] - b[1] if metric == "accuracy" else m[0] > b[0] + b[1]
            lines.append(
                f"{key} {m[0]:.4g} vs {b[0]:.4g} +- {b[1]:.2g}: "
                f"{'FAIL' if worse else 'PASS'}"
            )
    return lines


def peer_verdict(results, run="multiphase") -> list[str]:
    """`run`'s final total against the best peer at the same peak: within
    one seed-sd of it (the larger of the two sds) passes."""
    peers = [p for p in AT_PEAK if p in results]
    if run not in results or not peers:
        return []
    mine = _stats([r["total"][-1] for r in results[run]])
    best = min(peers, key=lambda p: _stats([r["total"][-1] for r in results[p]])[0])
    theirs = _stats([r["total"][-1] for r in results[best]])
    ok = mine[0] <= theirs[0] + max(mine[1], theirs[1])
    return [
        f"total {mine[0]:.4g} +- {mine[1]:.2g} vs best peer {best} "
        f"{theirs[0]:.4g} +- {theirs[1]:.2g}: {'PASS' if ok else 'FAIL'}"
    ]


def heads_verdict(problem, results, run="multiphase+heads+x") -> list[str]:
    """Issue 24's bar for `run`: the dominant head's error within one
    seed-sd of the default's (or lower), and each small head at least half
    way from the default to output scaling."""
    needed = (run, "multiphase", "multiphase+scaling")
    if not all(r in results for r in needed):
        return []
    mean = lambda r, key: _stats([x["metrics"][key] for x in results[r]])  # noqa: E731
    key = f"{problem.dominant} mae"
    (m, _), (d, sd) = mean(run, key), mean("multiphase", key)
    lines = [
        f"{key} {m:.4g} vs default {d:.4g} +- {sd:.2g}: "
        f"{'PASS' if m <= d + sd else 'FAIL'}"
    ]
    for name in problem.losses:
        for metric in problem.metrics[name] if name != problem.dominant else ():
            key = f"{name} {metric}"
            m, d, s = (mean(r, key)[0] for r in needed)
            half = d + (s - d) / 2
            ok = m >= half if metric == "accuracy" else m <= half
            lines.append(
                f"{key} {m:.4g} (default {d:.4g}, scaling {s:.4g}, half way "
                f"{half:.4g}): {'PASS' if ok else 'FAIL'}"
            )
    return lines


def print_problem(problem, results):
    runs = list(results)
    width = 20
    print(f"\n## {problem.name}: {problem.about}")
    print(f"{'':<22}" + "".join(f"{run:>{width}}" for run in runs))
    rows = [
        ("val loss before", lambda r: r["initial"]),
        ("final total", lambda r: r["total"][-1]),
    ]
    rows += [(f"{n} loss", lambda r, n=n: r["final"][n]) for n in problem.losses]
    keys = next(iter(results.values()))[0]["metrics"]
    rows += [(k, lambda r, k=k: r["metrics"][k]) for k in keys]
    rows += [("peak lr", lambda r: r["peak"])]
    for label, get in rows:
        cells = "".join(
            f"{summary([get(r) for r in results[run]]):>{width}}" for run in runs
        )
        print(f"{label:<22}{cells}")
    print("diagnose() finds (seeds):")
    for run in runs:
        counts = collections.Counter(p for r in results[run] for p in r["problems"])
        print(f"  {run:<20} {dict(counts) or 'none'}")
    for line in verdict(problem, results):
        print(f"  multiphase vs baseline: {line}")
    for line in peer_verdict(results):
        print(f"  multiphase vs peers: {line}")
    for line in heads_verdict(problem, results):
        print(f"  multiphase+heads+x (issue 24): {line}")
    for line in peer_verdict(results, "multiphase+heads+x"):
        print(f"  multiphase+heads+x vs peers: {line}")


def _panels(count):
    """A figure with `count` panels, three to a row (the rest hidden)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(count, 3)
    rows = -(-count // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 4 * rows))
    axes = np.atleast_1d(axes).ravel()
    for ax in axes[count:]:
        ax.axis("off")
    return fig, axes


def plot(all_results, path):
    fig, axes = _panels(len(all_results))
    for ax, (name, results) in zip(axes, all_results.items(), strict=False):
        for run, runs in results.items():
            curves = np.array([r["total"] for r in runs])
            x_axis = np.arange(1, curves.shape[1] + 1)
            (line,) = ax.plot(x_axis, curves.mean(0), label=run)
            ax.fill_between(
                x_axis, curves.min(0), curves.max(0), color=line.get_color(), alpha=0.12
            )
        ax.set_yscale("log")
        ax.set_title(f"{name}: total val loss")
        ax.set_xlabel("epoch")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def plot_tradeoff(all_results, path):
    """The dominant-versus-small trade-off: per problem, one point per run
    at (the dominant head's MAE, the mean accuracy of the classifier heads),
    both in original units, mean over seeds."""
    fig, axes = _panels(len(all_results))
    for ax, (name, results) in zip(axes, all_results.items(), strict=False):
        problem = {**PROBLEMS, **HELD_OUT}[name]
        for run, runs in results.items():
            mae = np.mean([r["metrics"][f"{problem.dominant} mae"] for r in runs])
            accuracy = np.mean(
                [
                    v
                    for r in runs
                    for k, v in r["metrics"].items()
                    if k.endswith("accuracy")
                ]
            )
            ax.scatter(mae, accuracy)
            ax.annotate(run, (mae, accuracy), fontsize=6)
        ax.set_xscale("log")
        ax.set_xlabel(f"{problem.dominant} MAE (original units; left is better)")
        ax.set_ylabel("small heads' accuracy (up is better)")
        ax.set_title(name)
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument(
        "--problems",
        nargs="+",
        default=list(PROBLEMS),
        choices=list(PROBLEMS) + list(HELD_OUT),
    )
    parser.add_argument(
        "--runs", nargs="+", default=list(RUNS), choices=RUNS + PEERS + EXPERIMENTS
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help='NAME=JSON: a run of preset("multiphase", **JSON) named NAME; '
        'JSON\'s "preset" names another preset or a YAML file',
    )
    parser.add_argument("--json", help="write all results to this file")
    parser.add_argument("--out", help="write the loss-curve plot to this PNG")
    parser.add_argument("--tradeoff", help="write the trade-off plot to this PNG")
    args = parser.parse_args()
    for item in args.variant:
        name, _, overrides = item.partition("=")
        VARIANTS[name] = json.loads(overrides)
        args.runs.append(name)

    everything = {}
    for name in args.problems:
        problem = {**PROBLEMS, **HELD_OUT}[name]
        results = collections.defaultdict(list)
        for seed in range(args.seeds):
            data = problem.data(seed)
            for run in args.runs:
                result = one_run(run, problem, seed, data, args.epochs)
                results[run].append(result)
                print(
                    f"{name} seed {seed} {run:<19} {result['seconds']:5.1f}s "
                    f"total {result['total'][-1]:.4g}",
                    flush=True,
                )
        everything[name] = dict(results)
        print_problem(problem, everything[name])
    print(
        f"\nbackend {keras.backend.backend()}, keras {keras.__version__}, "
        f"{args.seeds} seeds, {args.epochs} epochs, batch {BATCH}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(everything, f)
    if args.out:
        plot(everything, args.out)
        print(f"plot: {args.out}")
    if args.tradeoff:
        plot_tradeoff(everything, args.tradeoff)
        print(f"trade-off plot: {args.tradeoff}")


if __name__ == "__main__":
    main()
