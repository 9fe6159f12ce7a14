"""The collapse-then-plateau run, reproduced, and what each remedy does to it.

The problem (`keras_multiphase.synthetic`, where the data recipe is
documented): three heads on a shared trunk, one unnormalised "threshold"
regression whose first loss is ~5e5 and dominates, a classification and a
small regression. Inputs include one raw feature of order 700.

Runs, on the same data and the same initial weights per seed:

  baseline            AdamW 2e-4 constant, batch 48, equal loss weights:
                      the documented settings
  keras-cosine        Keras's best effort with a schedule: CosineDecay with
                      a one-epoch linear warmup to 2e-4 (ReduceLROnPlateau
                      cannot be added: Keras raises TypeError on a schedule)
  keras-plateau       Keras's best effort without one: 2e-4 with
                      ReduceLROnPlateau(val_loss, factor 0.5, patience 2)
  multiphase          callbacks=preset("multiphase"), batch 48
  multiphase+batch    preset("multiphase", rebuild=...): batch 64 -> 32 -> 16
  multiphase@2e-4     preset("multiphase") with its three rates scaled x4 so
                      its peak is the baseline's 2e-4 (4e-5, 2e-4, 4e-6): not
                      the shipped recipe, shown to separate the recipe's
                      shape from its absolute rates
  baseline/std        the baseline on standardised data: the raw `level`
                      input and the `threshold` target z-scored with the
                      training set's mean and sd (what diagnose() suggests
                      for a dominant component)
  multiphase/std      preset("multiphase") on the same standardised data

For the /std runs the threshold loss and MAE are converted back to the
original units (x sd^2 and x sd), so every column is on one scale.

Printed per run (mean +- sd over seeds): the validation loss before training
(sum of the three unweighted components, so runs with re-weighted losses are
compared on the same scale), the drop over epoch 0, the further improvement
over the remaining epochs, each component's final validation loss, each
head's final metric (threshold MAE, cls accuracy, reg MAE), and the problems
`keras_multiphase.diagnose` finds. One plot of the validation loss curves,
total and per component, log scale (mean and min-max band over seeds).

    KERAS_BACKEND=jax python benchmarks/collapse_plateau.py [--seeds 3]
        [--epochs 30] [--samples 9600] [--out benchmarks/collapse_plateau.png]
"""

from __future__ import annotations

import argparse
import collections
import time

import keras
import numpy as np

import keras_multiphase as km
from keras_multiphase.synthetic import (
    LOSSES,
    METRICS,
    OUTPUTS,
    make_model,
    make_problem,
)

RUNS = (
    "baseline",
    "keras-cosine",
    "keras-plateau",
    "multiphase",
    "multiphase+batch",
    "multiphase@2e-4",
    "baseline/std",
    "multiphase/std",
)
BATCH = 48
RATE = 2e-4


def setup(run, x, y, epochs):
    """Optimizer, callbacks and data for one run."""
    steps = int(np.ceil(len(x) / BATCH))
    data = {"x": x, "y": y, "batch_size": BATCH}
    callbacks = []
    rate = RATE
    if run == "keras-cosine":
        rate = keras.optimizers.schedules.CosineDecay(
            0.0, (epochs - 1) * steps, warmup_target=RATE, warmup_steps=steps
        )
    elif run == "keras-plateau":
        callbacks = [keras.callbacks.ReduceLROnPlateau("val_loss", 0.5, 2)]
    elif run in ("multiphase", "multiphase/std"):
        callbacks = km.preset("multiphase")
    elif run == "multiphase+batch":
        callbacks = km.preset("multiphase", rebuild=lambda batch_size: (x, y))
        adaptive = next(c for c in callbacks if isinstance(c, km.AdaptiveBatch))
        data = {"x": adaptive.data}
    elif run == "multiphase@2e-4":
        callbacks = km.preset("multiphase", start_lr=4e-5, peak_lr=2e-4, final_lr=4e-6)
    return keras.optimizers.AdamW(rate), callbacks, data


def components(logs: dict, prefix: str = "val_") -> dict:
    return {name: np.asarray(logs[f"{prefix}{name}_loss"]) for name in OUTPUTS}


def standardise(x, y, xv, yv):
    """z-scores the raw `level` input column and the threshold target with
    the training set's statistics; returns the data and the target's sd."""
    mean, sd = x[:, -1].mean(), x[:, -1].std()
    t_mean, t_sd = y["threshold"].mean(), y["threshold"].std()

    def apply(x, y):
        x = x.copy()
        x[:, -1] = (x[:, -1] - mean) / sd
        return x, dict(y, threshold=(y["threshold"] - t_mean) / t_sd)

    return (*apply(x, y), *apply(xv, yv), float(t_sd))


def one_run(run, seed, x, y, xv, yv, epochs, initial_weights):
    scale = 1.0
    if run.endswith("/std"):
        x, y, xv, yv, scale = standardise(x, y, xv, yv)
    keras.utils.set_random_seed(seed)
    model = make_model(seed)
    model.set_weights(initial_weights)
    optimizer, callbacks, data = setup(run, x, y, epochs)
    model.compile(optimizer=optimizer, loss=LOSSES, metrics=METRICS)
    before = model.evaluate(xv, yv, verbose=0, return_dict=True, batch_size=256)
    start = time.perf_counter()
    history = model.fit(
        **data,
        epochs=epochs,
        validation_data=(xv, yv),
        callbacks=callbacks,
        verbose=0,
    )
    seconds = time.perf_counter() - start
    logs = dict(history.history)
    for key in ("val_threshold_loss", "val_threshold_mae"):
        factor = scale**2 if key.endswith("loss") else scale
        logs[key] = [value * factor for value in logs[key]]
    before["threshold_loss"] *= scale**2
    parts = components(logs)
    total = sum(parts.values())
    initial = sum(before[f"{name}_loss"] for name in OUTPUTS)
    curve = {"val_loss": list(total)}
    curve.update({f"val_{n}_loss": list(v) for n, v in parts.items()})
    if "learning_rate" in logs:
        curve["learning_rate"] = logs["learning_rate"]
    report = km.diagnose(curve, monitor="val_loss", initial_loss=initial)
    return {
        "initial": initial,
        "epoch0_drop": 1 - total[0] / initial,
        "later_improvement": 1 - total[-1] / total[0],
        "total": total,
        "parts": parts,
        "final": {n: v[-1] for n, v in parts.items()},
        "metrics": {
            "threshold MAE": logs["val_threshold_mae"][-1],
            "cls accuracy": logs["val_cls_accuracy"][-1],
            "reg MAE": logs["val_reg_mae"][-1],
        },
        "problems": report.problems,
        "seconds": seconds,
    }


def summary(values) -> str:
    values = np.asarray(values, dtype="float64")
    mean, sd = values.mean(), values.std(ddof=1) if len(values) > 1 else 0.0
    if abs(mean) >= 100:
        return f"{mean:,.0f} +- {sd:,.0f}"
    return f"{mean:.4g} +- {sd:.2g}"


def plot(results, path, epochs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8), sharex=True)
    panels = [("total (sum of components)", "total")] + [
        (f"{name} component", name) for name in OUTPUTS
    ]
    x_axis = np.arange(1, epochs + 1)
    for ax, (title, key) in zip(axes.ravel(), panels, strict=True):
        for run, runs in results.items():
            curves = np.array(
                [r["total"] if key == "total" else r["parts"][key] for r in runs]
            )
            (line,) = ax.plot(x_axis, curves.mean(0), label=run)
            ax.fill_between(
                x_axis, curves.min(0), curves.max(0), color=line.get_color(), alpha=0.15
            )
        ax.set_yscale("log")
        ax.set_title(f"validation loss: {title}")
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("epoch")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(
        f"collapse-then-plateau benchmark ({keras.backend.backend()}, "
        f"{len(next(iter(results.values())))} seeds)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--samples", type=int, default=9600)
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=RUNS)
    parser.add_argument("--out", default="benchmarks/collapse_plateau.png")
    args = parser.parse_args()

    results = collections.defaultdict(list)
    for seed in range(args.seeds):
        x, y = make_problem(args.samples, seed=seed)
        xv, yv = make_problem(max(args.samples // 8, 256), seed=1000 + seed)
        initial_weights = make_model(seed).get_weights()
        for run in args.runs:
            result = one_run(run, seed, x, y, xv, yv, args.epochs, initial_weights)
            results[run].append(result)
            print(
                f"seed {seed} {run:<17} {result['seconds']:5.1f}s  final total "
                f"{result['total'][-1]:.4g}  problems {list(result['problems'])}",
                flush=True,
            )

    print(
        f"\nbackend {keras.backend.backend()}, {args.seeds} seed(s), "
        f"{args.epochs} epochs, {args.samples} samples (mean +- sd over seeds)"
    )
    rows = [
        ("val loss before", lambda r: r["initial"]),
        ("drop in epoch 0", lambda r: 100 * r["epoch0_drop"]),
        ("then improvement %", lambda r: 100 * r["later_improvement"]),
        ("final total", lambda r: r["total"][-1]),
    ]
    rows += [(f"final {n} loss", lambda r, n=n: r["final"][n]) for n in OUTPUTS]
    rows += [
        (name, lambda r, name=name: r["metrics"][name])
        for name in ("threshold MAE", "cls accuracy", "reg MAE")
    ]
    width = 20
    print(f"{'':<20}" + "".join(f"{run:>{width}}" for run in results))
    for label, get in rows:
        cells = "".join(
            f"{summary([get(r) for r in runs]):>{width}}" for runs in results.values()
        )
        print(f"{label:<20}{cells}")
    print("\nproblems diagnose() finds (seeds in which each is found):")
    for run, runs in results.items():
        counts = collections.Counter(p for r in runs for p in r["problems"])
        print(f"  {run:<17} {dict(counts) or 'none'}")
    if args.out:
        plot(results, args.out, args.epochs)
        print(f"\nplot: {args.out}")


if __name__ == "__main__":
    main()
