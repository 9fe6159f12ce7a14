"""Presets and schedules against the references they name, step by step:
Hugging Face `get_wsd_schedule`, timm `CosineLRScheduler`, PyTorch
`OneCycleLR`. The references are transcribed in NumPy from their sources
(PyTorch's own scheduler is used when torch is installed)."""

import math

import keras
import numpy as np
import pytest
from helpers import fit_probe, rate_probe, weight

from keras_multiphase import OneCycle, WarmupCosineRestarts, preset, preview


def hf_wsd(step, warmup, stable, decay, min_lr_ratio, num_cycles=0.5):
    """transformers.optimization._get_wsd_scheduler_lambda, linear warmup,
    cosine decay."""
    if step < warmup:
        progress = step / max(1, warmup)
        return max(0.0, progress * (1.0 - min_lr_ratio) + min_lr_ratio)
    if step < warmup + stable:
        return 1.0
    if step < warmup + stable + decay:
        progress = (step - warmup - stable) / max(1, decay)
        factor = 0.5 * (1.0 + math.cos(math.pi * num_cycles * 2.0 * progress))
        return max(0.0, factor * (1.0 - min_lr_ratio) + min_lr_ratio)
    return min_lr_ratio


@pytest.mark.parametrize("epochs, steps", [(10, 5), (7, 3), (20, 11)])
def test_wsd_equals_hugging_face_get_wsd_schedule(epochs, steps):
    peak = 1e-3
    total = epochs * steps
    decay = total - int(round(0.8 * epochs * steps))
    rates = preview("wsd", epochs=epochs, steps_per_epoch=steps, base_lr=peak)[
        "learning_rate"
    ]
    want = [
        peak * hf_wsd(t, steps, total - steps - decay, decay, 0.01)
        for t in range(total)
    ]
    np.testing.assert_allclose(rates, want, rtol=1e-5, atol=1e-12)
    assert rates[0] == pytest.approx(0.01 * peak)  # not 0: the first batch trains
    # Through the step (SGD probe: each step moves w by -lr).
    model, log, _ = fit_probe(
        preset("wsd", peak_lr=peak),
        epochs=epochs,
        steps_per_epoch=steps,
        model=rate_probe(keras.optimizers.SGD(peak)),
    )
    per_epoch = np.reshape(want, (epochs, steps)).sum(axis=1)
    np.testing.assert_allclose(log.per_epoch(), per_epoch, rtol=1e-5, atol=1e-9)


def timm_cosine(
    t,
    t_initial,
    warmup_t,
    warmup_lr_init,
    base,
    lr_min,
    cycle_mul,
    cycle_decay,
    warmup_prefix=False,
):
    """timm.scheduler.CosineLRScheduler._get_lr (cycle_limit unbounded)."""
    if t < warmup_t:
        return warmup_lr_init + t * (base - warmup_lr_init) / warmup_t
    if warmup_prefix:
        t = t - warmup_t
    if cycle_mul != 1:
        i = math.floor(math.log(1 - t / t_initial * (1 - cycle_mul), cycle_mul))
        t_i = cycle_mul**i * t_initial
        t_curr = t - (1 - cycle_mul**i) / (1 - cycle_mul) * t_initial
    else:
        i = t // t_initial
        t_i = t_initial
        t_curr = t - t_initial * i
    lr_max = base * cycle_decay**i
    return lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(math.pi * t_curr / t_i))


@pytest.mark.parametrize("warmup_prefix", [False, True])
@pytest.mark.parametrize("cycle_mult", [1.0, 2.0])
def test_warmup_cosine_restarts_equals_timm(warmup_prefix, cycle_mult):
    base, epochs, steps = 0.1, 14, 5

    def make():
        return WarmupCosineRestarts(
            first_cycle_steps=10,
            cycle_mult=cycle_mult,
            cycle_decay=0.8,
            min_ratio=0.05,
            warmup_steps=3,
            warmup_start_ratio=0.1,
            warmup_prefix=warmup_prefix,
        )

    rates = preview([make()], epochs=epochs, steps_per_epoch=steps, base_lr=base)[
        "learning_rate"
    ]
    want = [
        timm_cosine(
            t, 10, 3, 0.1 * base, base, 0.05 * base, cycle_mult, 0.8, warmup_prefix
        )
        for t in range(epochs * steps)
    ]
    np.testing.assert_allclose(rates, want, rtol=1e-5, atol=1e-9)
    # Through the step, too (SGD probe: -w is the sum of applied rates).
    model, _, _ = fit_probe(
        [make()],
        epochs=epochs,
        steps_per_epoch=steps,
        model=rate_probe(keras.optimizers.SGD(base)),
    )
    np.testing.assert_allclose(-weight(model), sum(want), rtol=1e-5)


def torch_one_cycle(total, max_lr, optimizer="sgd", **kwargs):
    """Per-step (lr, momentum) of PyTorch's OneCycleLR."""
    torch = pytest.importorskip("torch")
    param = torch.nn.Parameter(torch.zeros(1))
    if optimizer == "sgd":
        opt = torch.optim.SGD([param], lr=max_lr, momentum=0.9)
    else:
        opt = torch.optim.Adam([param], lr=max_lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=max_lr, total_steps=total, **kwargs
    )
    rates, momenta = [], []
    for _ in range(total):
        group = opt.param_groups[0]
        rates.append(group["lr"])
        momenta.append(group["betas"][0] if "betas" in group else group["momentum"])
        opt.step()
        scheduler.step()
    return np.array(rates), np.array(momenta)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"three_phase": True}, {"anneal_strategy": "linear", "pct_start": 0.25}],
    ids=["default", "three_phase", "linear"],
)
@pytest.mark.parametrize("epochs, steps", [(10, 10), (7, 3)])
def test_one_cycle_equals_pytorch_one_cycle_lr(kwargs, epochs, steps):
    total = epochs * steps
    want, _ = torch_one_cycle(total, 0.01, **kwargs)
    rates = preview(
        [OneCycle(max_lr=0.01, **kwargs)], epochs=epochs, steps_per_epoch=steps
    )["learning_rate"]
    # float32 cos: absolute error ~1e-7 of the peak where the rate is tiny.
    np.testing.assert_allclose(rates, want, rtol=1e-5, atol=1e-7 * 0.01)
    default = preview("one_cycle", epochs=epochs, steps_per_epoch=steps)
    if not kwargs:
        np.testing.assert_allclose(
            default["learning_rate"],
            torch_one_cycle(total, 1e-3)[0],
            rtol=1e-5,
            atol=1e-7 * 1e-3,
        )


def test_one_cycle_cycles_sgd_momentum_inside_the_step():
    """SGD with momentum on the probe (gradient 1): Keras's update is
    m <- mu_t m - lr_t, w <- w + m; replayed with PyTorch's lr_t and mu_t."""
    epochs, steps = 4, 5
    total = epochs * steps
    rates, momenta = torch_one_cycle(total, 0.1)
    model = rate_probe(keras.optimizers.SGD(0.1, momentum=0.9))
    fit_probe([OneCycle()], epochs=epochs, steps_per_epoch=steps, model=model)
    w, m = 0.0, 0.0
    for lr, mu in zip(rates, momenta, strict=True):
        m = mu * m - lr
        w += m
    np.testing.assert_allclose(weight(model), w, rtol=1e-4)
    # The optimizer gets its own momentum back.
    assert model.optimizer.momentum == 0.9


def test_one_cycle_cycles_adam_beta_1_inside_the_step():
    """Adam on the probe (gradient 1), replayed in NumPy with PyTorch's
    per-step lr and beta_1 (Keras's update: bias corrections with the
    current beta_1, as PyTorch's)."""
    epochs, steps = 3, 4
    total = epochs * steps
    rates, betas = torch_one_cycle(total, 0.05, optimizer="adam")
    eps, beta_2 = 1e-7, 0.999
    model = rate_probe(keras.optimizers.Adam(0.05, epsilon=eps))
    fit_probe([OneCycle()], epochs=epochs, steps_per_epoch=steps, model=model)
    w, m, v = 0.0, 0.0, 0.0
    for t, (lr, b1) in enumerate(zip(rates, betas, strict=True), start=1):
        m += (1.0 - m) * (1 - b1)
        v += (1.0 - v) * (1 - beta_2)
        alpha = lr * math.sqrt(1 - beta_2**t) / (1 - b1**t)
        w -= alpha * m / (math.sqrt(v) + eps)
    np.testing.assert_allclose(weight(model), w, rtol=1e-4)
    assert model.optimizer.beta_1 == 0.9
