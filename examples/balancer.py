"""One head whose loss is ~100x the others: with and without the balancer.

A shared trunk feeds a "threshold" regression head (targets around 70, loss
in the thousands at first) and two small heads ("cls", "aux", losses around
0.5 to 3). Without balancing, the total loss is the threshold loss and the
optimizer tunes that head alone. With `LossWeightBalancer("magnitude")`
each component contributes equally. The table shows each component's
unweighted loss per epoch for both runs.

    KERAS_BACKEND=jax python examples/balancer.py [--epochs 10]
"""

import argparse

import keras
import numpy as np

from keras_multiphase import LossWeightBalancer

HEADS = ("threshold", "cls", "aux")


def make_data(n=4096, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 16)).astype("float32")
    w = rng.normal(size=(16, 3)).astype("float32")
    z = x @ w
    y = {
        "threshold": (70.0 + 5.0 * z[:, :1]).astype("float32"),
        "cls": (np.sin(z[:, 1:2]) > 0).astype("float32"),
        "aux": np.tanh(z[:, 2:3] * z[:, :1] / 4).astype("float32"),
    }
    return x, y


def make_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16,))
    trunk = keras.layers.Dense(64, activation="relu")(inputs)
    trunk = keras.layers.Dense(64, activation="relu")(trunk)
    outputs = {
        "threshold": keras.layers.Dense(1, name="threshold")(trunk),
        "cls": keras.layers.Dense(1, activation="sigmoid", name="cls")(trunk),
        "aux": keras.layers.Dense(1, name="aux")(trunk),
    }
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss={"threshold": "mse", "cls": "binary_crossentropy", "aux": "mse"},
    )
    return model


def run(callbacks, epochs, x, y):
    return (
        make_model()
        .fit(x, y, epochs=epochs, batch_size=64, verbose=0, callbacks=callbacks)
        .history
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    x, y = make_data()
    plain = run([], args.epochs, x, y)
    balancer = LossWeightBalancer("magnitude", warmup_epochs=3)
    balanced = run([balancer], args.epochs, x, y)
    print(f"backend: {keras.backend.backend()}")
    header = "epoch | " + " | ".join(f"{h:>9} plain / balanced" for h in HEADS)
    print(header + " | weights (balanced run)")
    for e in range(args.epochs):
        cells = " | ".join(
            f"{plain[f'{h}_loss'][e]:>9.3f} / {balanced[f'{h}_loss'][e]:<8.3f}"
            for h in HEADS
        )
        weights = " ".join(f"{balanced[f'{h}_loss_weight'][e]:.3g}" for h in HEADS)
        print(f"{e + 1:>5} | {cells} | {weights}")


if __name__ == "__main__":
    main()
