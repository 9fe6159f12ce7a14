"""Per-step cost of this package's callbacks, per backend, in microseconds.

For each backend (one child process each) and each model, the same fit is
run with nothing attached (`bare`), with Keras's own `CosineDecayRestarts`
schedule on the optimizer (the anchor: what Keras itself costs for a
schedule), with each callback alone, and with `preset("multiphase")` as
users write it (range test included: it runs in `on_train_begin`, outside
the timed epochs). Runs are interleaved and repeated, the order rotated by
one configuration each round (a run's position in a round biases its time;
use a multiple of the number of configurations as `--repeats`); each run's
time is its fastest epoch after the first (tracing; the epoch-level hooks of
the callbacks are inside it), compared with the `bare` run of the same round.
Printed per configuration: the median over rounds of the microseconds added
per step against `bare` (with the 25-75% range in `--json`), and the median
throughput as a ratio to `bare` (1.00 = free). `bare (again)` is the same
fit as `bare` (an A/A comparison): its figure is the resolution of the
measurement on the machine it ran on.

Models:
  small    MLP 32-64-1, batch 16, 1,024 steps per epoch: a short step,
           the honest case for per-step cost (a GPU step is short too)
  current  MLP 64-256-256-1, batch 32, 512 steps per epoch: a longer
           step, which hides most of the cost
  two-head the small model with two output heads (a dict of outputs, one
           loss each): the shape of model the preset is for
  classifier  the small model with a regression head and a sigmoid
           classifier (for `stable_heads(model)`, `normalize_heads(model)`,
           `normalize_heads(model, x=x)`)
  current-classifier  the current model with the same two heads

    python benchmarks/overhead.py [--backends tensorflow jax torch]
        [--models small current] [--configs preset(multiphase) ...]
        [--repeats 3] [--epochs 3] [--one-core] [--json out.json]

`--one-core` runs each backend's process on one CPU with one compute
thread (XLA_FLAGS, TF_NUM_*_THREADS, OMP_NUM_THREADS), so that the step,
Keras's callback thread and the compute threads do not trade places on
the cores: on the 2-core machine this cut the JAX A/A spread (25-75%)
from about +-6 us/step to +-0.5. TensorFlow's runtime measured noisier on
one core than on two; use it for JAX and PyTorch.

`LayerRates(layer_decay=0.75)` gives every layer its own rate (the
optimizer's update runs once per layer).

Configurations besides the callbacks: `5 empty callbacks` (what Keras's
loop costs per attached callback, whatever it does), the preset with a
given peak (`peak_lr=1e-3`, no range test at train begin), and two that
isolate what a variable of the training state costs per step: `constant
schedule` (the bare fit's rate as a `LearningRateSchedule`, so the
optimizer has no `learning_rate` variable, as with Keras's own schedules)
and `one more optimizer variable` (the bare fit with one scalar added to
the optimizer's variables, read by nothing).
"""

import argparse
import functools
import json
import os
import subprocess
import sys

CONFIGS = (
    "bare",
    "bare (again)",
    "CosineDecayRestarts",
    "constant schedule",
    "one more optimizer variable",
    "PhaseLR",
    "WarmupCosineRestarts",
    "PlateauLR",
    "LayerRates(layer_decay=0.75)",
    "5 empty callbacks",
    "LearningRateScheduler",
    "preset(multiphase, peak_lr=1e-3)",
    "preset(multiphase, peak_lr=1e-3, log_dir)",
    "preset(multiphase)",
    "stable_heads(model)",
    "normalize_heads(model)",
    "normalize_heads(model, x=x)",
    "normalize_heads(model, x=x, units=standard)",
)
ONE_THREAD = {
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "OMP_NUM_THREADS": "1",
}
MODELS = {
    "small": {"inputs": 32, "hidden": (64,), "batch": 16, "steps": 1024},
    "current": {"inputs": 64, "hidden": (256, 256), "batch": 32, "steps": 512},
    "two-head": {"inputs": 32, "hidden": (64,), "batch": 16, "steps": 1024, "heads": 2},
    "classifier": {
        "inputs": 32,
        "hidden": (64,),
        "batch": 16,
        "steps": 1024,
        "heads": 2,
        "classifier": True,
    },
    "current-classifier": {
        "inputs": 64,
        "hidden": (256, 256),
        "batch": 32,
        "steps": 512,
        "heads": 2,
        "classifier": True,
    },
}


def save(path: str, results: dict, **settings) -> None:
    """Writes `results` and the run's `settings` as JSON to `path`."""
    results["settings"] = settings
    with open(path, "w") as f:
        json.dump(results, f, indent=1)


def child(models, repeats, epochs, configs=CONFIGS):
    import keras
    import numpy as np
    from _fits import EpochTimer, callbacks, compiled

    out = {}
    for name in models:
        spec = MODELS[name]
        steps, batch = spec["steps"], spec["batch"]
        rng = np.random.default_rng(0)
        x = rng.normal(size=(steps * batch, spec["inputs"])).astype("float32")
        y = rng.normal(size=(steps * batch, 1)).astype("float32")
        runs = {k: [] for k in configs}
        for round_ in range(repeats):
            # Each round starts one configuration later: a run's position in
            # the round shifts its time (later runs were slower by up to
            # ~10 us/step here), so every configuration takes every position.
            shift = round_ % len(configs)
            for kind in configs[shift:] + configs[:shift]:
                keras.backend.clear_session()
                model, targets = compiled(kind, spec, y, x)
                timer = EpochTimer()
                model.fit(
                    x,
                    targets,
                    batch_size=batch,
                    epochs=1 + epochs,
                    shuffle=False,
                    verbose=0,
                    callbacks=[*callbacks(kind), timer],
                )
                runs[kind].append(min(timer.times[1:]))
        bare = np.asarray(runs["bare"])
        out[name] = {}
        for kind, times in runs.items():
            # Paired with the bare run of the same round (drift cancels);
            # the median over rounds, and the spread of the middle half.
            added = (np.asarray(times) - bare) / steps * 1e6
            low, mid, high = np.percentile(added, [25, 50, 75])
            out[name][kind] = {
                "us_per_step": float(mid),
                "us_per_step_iqr": [float(low), float(high)],
                "throughput": float(np.median(bare / np.asarray(times))),
                "bare_us_per_step": float(np.median(bare)) / steps * 1e6,
            }
    print("RESULT " + json.dumps(out))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--configs", nargs="+", default=list(CONFIGS[1:]), choices=CONFIGS[1:]
    )
    parser.add_argument(
        "--one-core",
        action="store_true",
        help="one CPU and one compute thread per backend process",
    )
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_core and not hasattr(os, "sched_setaffinity"):
        parser.error("--one-core needs os.sched_setaffinity (Linux)")
    if args.child:
        child(args.models, args.repeats, args.epochs, ("bare", *args.configs))
        return
    results = {}
    for backend in args.backends:
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        pin = None
        if args.one_core:
            env.update(ONE_THREAD)
            pin = functools.partial(
                os.sched_setaffinity, 0, {max(os.sched_getaffinity(0))}
            )
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                "--models",
                *args.models,
                "--repeats",
                str(args.repeats),
                "--epochs",
                str(args.epochs),
                "--configs",
                *args.configs,
            ],
            env=env,
            preexec_fn=pin,
            capture_output=True,
            text=True,
        )
        lines = [
            line for line in done.stdout.splitlines() if line.startswith("RESULT ")
        ]
        if done.returncode or not lines:
            print(f"{backend}: failed\n{done.stderr[-3000:]}")
            sys.exit(1)
        results[backend] = json.loads(lines[-1][len("RESULT ") :])
    for model in args.models:
        spec = MODELS[model]
        print(
            f"\n{model}: MLP {spec['inputs']}-"
            + "-".join(map(str, spec["hidden"]))
            + f"-1 (x{spec.get('heads', 1)} heads), batch {spec['batch']}, "
            + f"{spec['steps']} steps/epoch"
        )
        header = f"{'added us/step (x bare)':<24}" + "".join(
            f"{b:>22}" for b in args.backends
        )
        print(header)
        bare_line = f"{'bare fit, us/step':<24}" + "".join(
            f"{results[b][model]['bare']['bare_us_per_step']:>22.1f}"
            for b in args.backends
        )
        print(bare_line)
        for kind in args.configs:
            cells = []
            for b in args.backends:
                r = results[b][model][kind]
                cells.append(f"{r['us_per_step']:>+10.1f} ({r['throughput']:.3f} x)")
            print(f"{kind:<24}" + "".join(f"{c:>22}" for c in cells))
        print("(median over rounds of the difference paired by round; --json: spread)")
    if args.json:
        save(
            args.json,
            results,
            repeats=args.repeats,
            epochs=args.epochs,
            one_core=args.one_core,
        )


if __name__ == "__main__":
    main()
