"""A multi-head model trained with the one-line recipe, and what it did.

Synthetic data: a "threshold" regression head whose loss starts large
(targets around 70) and a "cls" classification head. The run is the two
lines users add:

    model = keras_multiphase.normalize_heads(model, y, x=x)  # before compile
    model.fit(..., callbacks=keras_multiphase.preset("multiphase"))

`normalize_heads` gives the small "cls" head its own normalisation and a
shortcut from the inputs, so the dominant "threshold" head does not hide it.
The preset runs a learning-rate range test at the start to find the peak
rate (the model is left as it was), then a controlled start at peak / 5
with a warmup (the first 10% of the run), an aggressive middle at the peak
(80%), fine-tuning at peak / 50 (the last 10%), plateau reduction. After
each epoch a table shows the phase, the rate of the epoch's first step
(within epoch 1 the warmup ramps it up; `preview` shows every step) and
each component's *unweighted* validation loss in its own column (the total
can fall because a weight fell, the components cannot), and the "cls"
head's accuracy. The loss weights are printed only if they moved (the
default keeps compile's). A baseline run (the same model unchanged, Adam
1e-3 fixed) is printed last for comparison.

    KERAS_BACKEND=jax python examples/demo.py [--epochs 12]
"""

import argparse

import keras
import numpy as np

import keras_multiphase


def make_data(n=2048, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 16)).astype("float32")
    w = rng.normal(size=(16,)).astype("float32")
    threshold = (70.0 + 10.0 * x @ w / 4.0)[:, None].astype("float32")
    cls = (x[:, :1] + x[:, 1:2] > 0).astype("float32")
    return x, {"threshold": threshold, "cls": cls}


def make_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((16,))
    hidden = keras.layers.Dense(64, activation="relu")(inputs)
    hidden = keras.layers.Dense(64, activation="relu")(hidden)
    threshold = keras.layers.Dense(1, name="threshold")(hidden)
    cls = keras.layers.Dense(1, activation="sigmoid", name="cls")(hidden)
    return keras.Model(inputs, {"threshold": threshold, "cls": cls})


def compile_model(model):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss={"threshold": "mse", "cls": "binary_crossentropy"},
        metrics={"cls": ["accuracy"]},
    )


class Table(keras.callbacks.Callback):
    """One row per epoch: phase, rate, each component's val loss."""

    def __init__(self, title):
        super().__init__()
        self.title = title

    def on_train_begin(self, logs=None):
        print(f"\n{self.title}")
        print(
            f"{'epoch':>5}  {'phase':<10} {'lr (1st step)':>13}  "
            f"{'val threshold':>13}  {'val cls':>8}  {'cls acc':>7}"
        )

    def on_epoch_end(self, epoch, logs=None):
        names = ("controlled", "aggressive", "fine-tune")
        phase = names[int(logs["phase"])] if "phase" in logs else "-"
        weights = ""
        if logs.get("threshold_loss_weight", 1.0) != 1.0 or (
            logs.get("cls_loss_weight", 1.0) != 1.0
        ):
            weights = (
                f"  weights {logs['threshold_loss_weight']:.3g}"
                f"/{logs['cls_loss_weight']:.3g}"
            )
        rate = logs.get("learning_rate", self.model.optimizer.learning_rate)
        print(
            f"{epoch + 1:>5}  {phase:<10} {float(rate):>13.2e}  "
            f"{logs['val_threshold_loss']:>13.3f}  {logs['val_cls_loss']:>8.4f}"
            f"  {logs['val_cls_accuracy']:>7.3f}{weights}",
            flush=True,
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args(argv)
    x, y = make_data()
    print(f"backend: {keras.backend.backend()}, epochs: {args.epochs}")
    finals = {}
    for name, two_lines in (
        ("normalize_heads + preset('multiphase')", True),
        ("baseline: Adam 1e-3 fixed", False),
    ):
        model = make_model()
        if two_lines:
            model = keras_multiphase.normalize_heads(model, y, x=x)
        compile_model(model)
        callbacks = keras_multiphase.preset("multiphase") if two_lines else []
        history = model.fit(
            x,
            y,
            epochs=args.epochs,
            batch_size=64,
            validation_split=0.2,
            verbose=0,
            callbacks=[*callbacks, Table(name)],
        ).history
        if "peak_lr" in history:
            print(f"peak_lr found by the range test: {history['peak_lr'][0]:.3g}")
        finals[name] = [
            history[key][-1]
            for key in ("val_threshold_loss", "val_cls_loss", "val_cls_accuracy")
        ]
    print("\nfinal unweighted validation losses:")
    for name, (threshold, cls, accuracy) in finals.items():
        print(
            f"  {name:<40} threshold {threshold:10.3f}   cls {cls:.4f} "
            f"(accuracy {accuracy:.3f})"
        )
    return finals


if __name__ == "__main__":
    main()
