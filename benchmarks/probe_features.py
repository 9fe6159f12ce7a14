"""What the finetune problem's trunk computes for its `grade` head.

Fits a linear probe (logistic regression) and a one-hidden-layer probe on
the trunk's last features, before training and after a suite run, and
counts the ReLU units that are 0 on every training sample (dead). Also
the same probes on the standardised inputs: what a head with its own path
from the inputs can reach.

    KERAS_BACKEND=jax python benchmarks/probe_features.py [--seed 0]
        [--runs multiphase+heads multiphase+scaling]
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import suite  # noqa: E402
from problems import BATCH, PROBLEMS  # noqa: E402


def probes(train, val, y, yv) -> str:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    scale = StandardScaler().fit(train)
    a, b = scale.transform(train), scale.transform(val)
    linear = LogisticRegression(max_iter=2000).fit(a, y).score(b, yv)
    hidden = MLPClassifier((64,), max_iter=500, random_state=0).fit(a, y).score(b, yv)
    return f"linear probe {linear:.3f}, one-hidden-layer probe {hidden:.3f}"


def trunk_features(trunk, model, x):
    """The trunk's last features for `x` (after the run's input layer, if
    it standardises the inputs)."""
    names = [layer.name for layer in model.layers]
    pre = model.get_layer("x_norm") if "x_norm" in names else (lambda v: v)
    h = trunk.get_layer("trunk2")(trunk.get_layer("trunk1")(pre(x)))
    return np.asarray(keras.ops.convert_to_numpy(h))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", nargs="+", default=["multiphase+heads"])
    args = parser.parse_args()
    problem = PROBLEMS["finetune"]
    x, y, xv, yv = problem.data(args.seed)
    grade, grade_v = y["grade"].ravel(), yv["grade"].ravel()
    print("standardised inputs:", probes(x, xv, grade, grade_v))
    trunk = problem.model(args.seed)
    h = trunk_features(trunk, trunk, x)
    hv = trunk_features(trunk, trunk, xv)
    print(
        f"pretrained trunk: {probes(h, hv, grade, grade_v)}, "
        f"dead units {np.mean(h.max(0) <= 0):.0%}"
    )
    for run in args.runs:
        keras.utils.set_random_seed(args.seed)
        trunk = problem.model(args.seed)
        model, optimizer, callbacks, weights, _ = suite.setup(
            run, problem, trunk, x, y, 30
        )
        model.compile(
            optimizer, problem.losses, loss_weights=weights, metrics=problem.metrics
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logs = model.fit(
                x,
                y,
                batch_size=BATCH,
                epochs=30,
                verbose=0,
                validation_data=(xv, yv),
                callbacks=callbacks,
            ).history
        h, hv = trunk_features(trunk, model, x), trunk_features(trunk, model, xv)
        print(
            f"after {run} (grade accuracy {logs['val_grade_accuracy'][-1]:.3f}): "
            f"{probes(h, hv, grade, grade_v)}, dead units {np.mean(h.max(0) <= 0):.0%}"
        )


if __name__ == "__main__":
    main()
