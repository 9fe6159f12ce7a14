"""What the benchmark scripts share: the model they fit and the timer."""

import tempfile
import time

import keras
import numpy as np


def mlp(inputs, hidden, heads, y, classifier=False):
    """A functional MLP with `heads` outputs of one unit, its loss and its
    targets: one head takes `y`; more take a dict of outputs, one `mse`
    each (as multi-output users compile), and `y` rolled by one per head.
    With `classifier`, the last head is a sigmoid with
    `binary_crossentropy` on `y > 0`."""
    x = keras.Input((inputs,))
    h = x
    for width in hidden:
        h = keras.layers.Dense(width, activation="relu")(h)
    names = [f"head_{i}" for i in range(heads)]
    outputs = {n: keras.layers.Dense(1, name=n)(h) for n in names}
    if heads == 1:
        return keras.Model(x, outputs[names[0]]), "mse", y
    targets = {n: np.roll(y, i) for i, n in enumerate(names)}
    losses = dict.fromkeys(names, "mse")
    if classifier:
        last = names[-1]
        outputs[last] = keras.layers.Dense(1, "sigmoid", name=last)(h)
        losses[last] = "binary_crossentropy"
        targets[last] = (targets[last] > 0).astype("float32")
    return keras.Model(x, outputs), losses, targets


class EpochTimer(keras.callbacks.Callback):
    """Wall time of each epoch, its hooks included."""

    def __init__(self):
        super().__init__()
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.start)


def optimizer(kind: str, steps: int):
    """The optimizer of configuration `kind` (`steps` per epoch)."""
    if kind == "CosineDecayRestarts":
        schedule = keras.optimizers.schedules.CosineDecayRestarts(
            1e-3, first_decay_steps=2 * steps
        )
        return keras.optimizers.Adam(schedule)
    if kind == "constant schedule":
        return keras.optimizers.Adam(_Constant())
    return keras.optimizers.Adam(1e-3)


class _Constant(keras.optimizers.schedules.LearningRateSchedule):
    """1e-3 at every step, as a schedule: the optimizer then has no
    `learning_rate` variable (what Keras's own schedules save)."""

    def __call__(self, step):
        return 1e-3


def callbacks(kind: str) -> list:
    """The callbacks of configuration `kind`."""
    import keras_multiphase as km

    if kind == "PhaseLR":
        return [
            km.PhaseLR(
                [
                    {"name": "a", "lr": 2e-4, "fraction": 0.3},
                    {"name": "b", "lr": 1e-3, "fraction": 0.4},
                    {"name": "c", "lr": 2e-5},
                ]
            )
        ]
    if kind == "WarmupCosineRestarts":
        return [km.WarmupCosineRestarts(warmup_epochs=1, first_cycle_epochs=1)]
    if kind == "PlateauLR":
        return [km.PlateauLR(monitor="loss", patience=2)]
    if kind == "LayerRates(layer_decay=0.75)":
        # Every layer its own group: the update is called once per layer.
        return [km.LayerRates(layer_decay=0.75)]
    if kind == "5 empty callbacks":
        # What Keras's loop costs per callback and step, whatever it does.
        return [keras.callbacks.Callback() for _ in range(5)]
    if kind == "LearningRateScheduler":
        # Keras's own way to change the rate between epochs: the optimizer
        # keeps its rate variable and one callback is attached.
        return [keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr)]
    if kind == "preset(multiphase, peak_lr=1e-3)":
        return km.preset("multiphase", peak_lr=1e-3)  # no range test
    if kind == "preset(multiphase)":
        return km.preset("multiphase")
    if kind == "preset(multiphase, peak_lr=1e-3, log_dir)":  # per-step logs
        folder = tempfile.mkdtemp(prefix="overhead-logs-")
        return km.preset("multiphase", peak_lr=1e-3, log_dir=folder)
    return []


def build(spec: dict, y):
    """The model of benchmark model `spec`, its loss and its targets."""
    heads = spec.get("heads", 1)
    if heads == 1:
        layers = [keras.Input((spec["inputs"],))]
        layers += [keras.layers.Dense(h, activation="relu") for h in spec["hidden"]]
        return keras.Sequential([*layers, keras.layers.Dense(1)]), "mse", y
    return mlp(spec["inputs"], spec["hidden"], heads, y, spec.get("classifier", False))


def compiled(kind: str, spec: dict, y, x=None):
    """The model of `spec` compiled for configuration `kind`, and its
    targets (`one more optimizer variable` adds a scalar nothing reads;
    `normalize_heads(model, x=x)` needs the inputs `x`)."""
    keras.utils.set_random_seed(0)
    model, loss, targets = build(spec, y)
    import keras_multiphase as km

    if kind == "stable_heads(model)":
        km.stable_heads(model)
    if kind == "normalize_heads(model)":  # the classifier reads a BatchNorm
        model = km.normalize_heads(model, primary="head_0")
    if kind == "normalize_heads(model, x=x)":  # ... and a shortcut from x
        model = km.normalize_heads(model, primary="head_0", x=x)
    if kind == "normalize_heads(model, x=x, units=standard)":  # ... and units
        model = km.normalize_heads(
            model, targets, primary="head_0", x=x, units="standard"
        )
    model.compile(optimizer=optimizer(kind, spec["steps"]), loss=loss)
    if kind == "one more optimizer variable":
        # One more variable in the training state, read by nothing.
        model.optimizer.build(model.trainable_variables)
        model.optimizer.add_variable((), name="one_more")
    return model, targets
