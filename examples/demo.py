"""A multi-head model trained in three learning-rate phases.

Synthetic data: a "threshold" regression head whose loss starts large and a
"cls" classification head. The run uses the package's recipe in one line,
`keras_multiphase.preset("multiphase")`: a controlled start at 1e-5 with
warmup, an aggressive middle at 5e-5 with cosine warm restarts, fine-tuning
at 1e-6 with plateau reduction, and loss weights that follow each head. The
table printed after each epoch shows the phase, the learning rate in effect
and the loss weights.

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


def make_model():
    inputs = keras.Input((16,))
    hidden = keras.layers.Dense(64, activation="relu")(inputs)
    hidden = keras.layers.Dense(64, activation="relu")(hidden)
    threshold = keras.layers.Dense(1, name="threshold")(hidden)
    cls = keras.layers.Dense(1, activation="sigmoid", name="cls")(hidden)
    model = keras.Model(inputs, {"threshold": threshold, "cls": cls})
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss={"threshold": "mse", "cls": "binary_crossentropy"},
    )
    return model


class PrintPhases(keras.callbacks.Callback):
    NAMES = ("controlled", "aggressive", "fine-tune")

    def on_epoch_end(self, epoch, logs=None):
        print(
            f"epoch {epoch + 1:3d}  phase {self.NAMES[logs['phase']]:<10}  "
            f"lr {logs['learning_rate']:.2e}  loss {logs['loss']:10.2f}  "
            f"threshold {logs['threshold_loss']:10.2f}  "
            f"cls {logs['cls_loss']:.3f}  weights "
            f"{logs['threshold_loss_weight']:.2g}/{logs['cls_loss_weight']:.2g}",
            flush=True,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    x, y = make_data()
    model = make_model()
    print(f"backend: {keras.backend.backend()}, epochs: {args.epochs}")
    model.fit(
        x,
        y,
        epochs=args.epochs,
        batch_size=64,
        validation_split=0.2,
        verbose=0,
        callbacks=[*keras_multiphase.preset("multiphase"), PrintPhases()],
    )


if __name__ == "__main__":
    main()
