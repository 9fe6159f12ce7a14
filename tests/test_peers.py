"""The suite's peers (`benchmarks/peers.py`) against the PyTorch packages
users install: Schedule-Free AdamW (`schedulefree`) and Prodigy
(`prodigyopt`), step by step, on every backend.

Each step's gradient is computed from the current weights (a quadratic
with its minimum away from the start), so a wrong update shows up in the
gradients of the steps after it too.
"""

import os
import sys

import keras
import numpy as np
import pytest

torch = pytest.importorskip("torch")
schedulefree = pytest.importorskip("schedulefree")
prodigyopt = pytest.importorskip("prodigyopt")

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import peers  # noqa: E402

SHAPES = ((3, 4), (4,), (2,))
STEPS = 25


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    start = [rng.normal(size=s).astype("float32") for s in SHAPES]
    start[2][:] = 0.0  # an all-zero variable, as a bias starts (Prodigy's p0)
    scale = [rng.uniform(0.5, 3.0, size=s).astype("float32") for s in SHAPES]
    target = [rng.normal(2.0, 1.0, size=s).astype("float32") for s in SHAPES]
    return start, scale, target


def _gradients(values, scale, target):
    return [a * (a * p - t) for p, a, t in zip(values, scale, target, strict=True)]


def _run_keras(optimizer, steps=STEPS):
    start, scale, target = _problem()
    variables = [keras.Variable(v) for v in start]
    optimizer.build(variables)
    history = []
    for _ in range(steps):
        values = [keras.ops.convert_to_numpy(v) for v in variables]
        grads = _gradients(values, scale, target)
        optimizer.apply([keras.ops.convert_to_tensor(g) for g in grads], variables)
        history.append([keras.ops.convert_to_numpy(v).copy() for v in variables])
    return variables, history


def _run_torch(make, steps=STEPS):
    start, scale, target = _problem()
    params = [torch.nn.Parameter(torch.tensor(v)) for v in start]
    optimizer = make(params)
    if hasattr(optimizer, "train"):
        optimizer.train()
    history = []
    for _ in range(steps):
        grads = _gradients([p.detach().numpy() for p in params], scale, target)
        for p, g in zip(params, grads, strict=True):
            p.grad = torch.tensor(g)
        optimizer.step()
        history.append([p.detach().numpy().copy() for p in params])
    return params, optimizer, history


def _assert_same(ours, theirs, rtol, atol):
    """Equal at every step, to float32 rounding: `atol` is relative to the
    largest weight of the variable (a small weight is a difference of large
    terms, and the packages sum their statistics in float64)."""
    for step, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_allclose(
                x,
                y,
                rtol=rtol,
                atol=atol * max(1.0, np.abs(y).max()),
                err_msg=f"step {step + 1}",
            )


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"learning_rate": 0.05, "weight_decay": 0.1, "warmup_steps": 5}],
    ids=["defaults", "decay_warmup"],
)
def test_schedule_free_adamw_follows_the_package_step_by_step(kwargs):
    torch_kwargs = {"lr" if k == "learning_rate" else k: v for k, v in kwargs.items()}
    _, ours = _run_keras(peers.ScheduleFreeAdamW(**kwargs))
    # The class users run, and the package's reference (the paper's form,
    # which this port follows): the two differ by float32 rounding.
    for make, atol in (
        (schedulefree.AdamWScheduleFree, 1e-5),
        (schedulefree.AdamWScheduleFreeReference, 1e-5),
    ):
        _, _, theirs = _run_torch(
            lambda p, make=make: make(p, foreach=False, **torch_kwargs)
        )
        _assert_same(ours, theirs, rtol=1e-5, atol=atol)


def test_schedule_free_averaged_point_equals_the_packages_eval():
    optimizer = peers.ScheduleFreeAdamW(learning_rate=0.05)
    variables, _ = _run_keras(optimizer)
    params, torch_opt, _ = _run_torch(
        lambda p: schedulefree.AdamWScheduleFree(p, lr=0.05, foreach=False)
    )
    torch_opt.eval()
    for v, p in zip(variables, params, strict=True):
        x = keras.ops.convert_to_numpy(optimizer.averaged(v))
        np.testing.assert_allclose(x, p.detach().numpy(), rtol=1e-5, atol=1e-5)
        assert not np.allclose(x, keras.ops.convert_to_numpy(v))  # y is not x


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"weight_decay": 0.05, "d_coef": 2.0, "growth_rate": 1.5}],
    ids=["defaults", "decay_coef_growth"],
)
def test_prodigy_follows_the_package_step_by_step(kwargs):
    # 15 steps: the estimate starts from tiny steps (d0 = 1e-6), where
    # p0 - p is a difference of close float32 numbers; rounding then grows.
    _, ours = _run_keras(peers.Prodigy(**kwargs), steps=15)
    _, optimizer, theirs = _run_torch(
        lambda p: prodigyopt.Prodigy(p, **kwargs), steps=15
    )
    _assert_same(ours, theirs, rtol=1e-5, atol=1e-5)
    # The estimate moved far from d0: the comparison covered the adaptation.
    assert optimizer.param_groups[0]["d"] > 100 * 1e-6


def test_prodigy_moves_nothing_while_every_gradient_is_zero():
    variables = [keras.Variable(np.ones(3, "float32"))]
    optimizer = peers.Prodigy()
    optimizer.build(variables)
    optimizer.apply([keras.ops.zeros(3)], variables)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(variables[0]), 1.0)
    assert float(keras.ops.convert_to_numpy(optimizer._d)) == pytest.approx(1e-6)


def _fit(validation, epochs=3, model=None, callbacks=()):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x @ rng.normal(size=(4, 1))).astype("float32")
    if model is None:
        keras.utils.set_random_seed(7)
        inputs = keras.Input((4,))
        h = keras.layers.Dense(8, activation="relu")(inputs)
        model = keras.Model(inputs, keras.layers.Dense(1)(h))
        model.compile(optimizer=peers.ScheduleFreeAdamW(0.01), loss="mse")
    history = model.fit(
        x,
        y,
        validation_data=(x, y) if validation else None,
        epochs=epochs,
        batch_size=16,
        shuffle=False,  # the same batches with or without validation
        verbose=0,
        callbacks=[peers.ScheduleFreeEval(), *callbacks],
    )
    return model, history, (x, y)


def _numpy(variables):
    return [keras.ops.convert_to_numpy(v) for v in variables]


def test_schedule_free_eval_validates_at_x_and_ends_there():
    model, history, (x, y) = _fit(validation=True)
    optimizer = model.optimizer
    weights, averaged = _numpy(model.trainable_variables), _numpy(optimizer._x)
    for v, a in zip(weights, averaged, strict=True):
        np.testing.assert_allclose(v, a, rtol=1e-6)
    assert not np.allclose(_numpy(optimizer._x)[0], _numpy(optimizer._z)[0])
    at_x = model.evaluate(x, y, verbose=0)
    assert history.history["val_loss"][-1] == pytest.approx(at_x, rel=1e-4)


def test_schedule_free_validation_does_not_change_training():
    # Training resumes at y after each validation: with or without it, the
    # same steps from the same start end at the same weights.
    with_validation = _numpy(_fit(validation=True)[0].trainable_variables)
    without = _numpy(_fit(validation=False)[0].trainable_variables)
    for a, b in zip(with_validation, without, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_schedule_free_next_fit_starts_from_y():
    model, _, _ = _fit(validation=False)
    optimizer = model.optimizer
    xs, zs = _numpy(optimizer._x), _numpy(optimizer._z)

    class AtBegin(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.values = _numpy(self.model.trainable_variables)

    at_begin = AtBegin()
    _fit(validation=False, epochs=1, model=model, callbacks=[at_begin])
    for v, a, b in zip(at_begin.values, xs, zs, strict=True):
        np.testing.assert_allclose(v, 0.9 * a + 0.1 * b, rtol=1e-5, atol=1e-7)
