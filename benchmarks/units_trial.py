"""Would a short trial at train begin pick the right units? (issue 35)

For each problem and seed, each variant of the units (`suite.py`'s
`multiphase+heads+x`, `+inputs`, `+inputs+zdom`, `+inputs+centred`) gets
its own range test (`find_lr`, as `peak_lr="auto"` does), then trains at
that peak for 25, 50, 100 and 200 steps; after each, the dominant head's
training loss (original units, on the first 1,024 training samples) is
recorded. `benchmarks/README.md` ("Which units") compares the variant the
trial ranks first with the one that ends best in the 30-epoch runs.

    SEED=0 KERAS_BACKEND=jax python benchmarks/units_trial.py collapse cancer ...
        [RUNS=multiphase+heads+x,...]    # writes units_trial_seed<SEED>.json
"""

import json
import os
import sys
import warnings

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import suite  # noqa: E402

import keras_multiphase as km  # noqa: E402

RUNS = [
    "multiphase+heads+x",
    "multiphase+heads+x+inputs",
    "multiphase+heads+x+inputs+zdom",
    "multiphase+heads+x+inputs+centred",
]
STEPS = (25, 50, 100, 200)


def trial(problem, run, seed):
    """{"peak": ..., "dominant": [loss after each of STEPS]}."""
    x, y, _, _ = problem.data(seed)
    keras.utils.set_random_seed(seed)
    model = problem.model(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _, _, weights, _ = suite.setup(run, problem, model, x, y, 30)
    compile_at = lambda rate: model.compile(  # noqa: E731
        optimizer=keras.optimizers.AdamW(rate),
        loss=problem.losses,
        loss_weights=weights,
    )
    compile_at(suite.RATE)
    found = km.find_lr(model, x, y, batch_size=suite.BATCH, verbose=0)
    peak = found.suggestion if found.conclusive else suite.RATE
    compile_at(peak)
    n, done, losses = len(next(iter(y.values()))), 0, []
    sample = (x[:1024], {k: v[:1024] for k, v in y.items()})
    for steps in STEPS:
        idx = np.random.default_rng(steps).integers(0, n, (steps - done) * suite.BATCH)
        batch_y = {k: v[idx] for k, v in y.items()}
        model.fit(x[idx], batch_y, batch_size=suite.BATCH, verbose=0, shuffle=False)
        done = steps
        logs = model.evaluate(*sample, verbose=0, return_dict=True, batch_size=256)
        losses.append(logs[f"{problem.dominant}_loss"])
    return {"peak": peak, "dominant": losses}


def main():
    seed = int(os.environ.get("SEED", 0))
    runs = os.environ["RUNS"].split(",") if os.environ.get("RUNS") else RUNS
    problems = {**suite.PROBLEMS, **suite.HELD_OUT}
    out = {}
    for name in sys.argv[1:]:
        for run in runs:
            out.setdefault(name, {})[run] = trial(problems[name], run, seed)
            print(seed, name, run, out[name][run], flush=True)
    with open(f"units_trial_seed{seed}.json", "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
