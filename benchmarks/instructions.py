"""Instructions per training step, counted by Valgrind: per-step cost
without the machine's noise.

Timing `fit` on a shared machine resolves a few microseconds per step at
best (`overhead.py` prints its A/A spread). This script counts instead the
instructions the process's main thread executes per step of `fit`, under
Valgrind's `callgrind` tool: the same fit gives the same count to within
about 0.3% (`bare (again)` shows it: hash tables keyed by addresses vary
with the heap's layout), so differences of a few thousand instructions
per step between configurations are real. A count is not a
time: it weighs all instructions alike, and it leaves out what runs on
other threads (XLA's and TensorFlow's compute threads, where the compiled
step itself runs on JAX; `step_cost.py` times that part).

Each configuration of `overhead.py` runs in its own process under
`valgrind --tool=callgrind --instr-atstart=no --separate-threads=yes`, on
`overhead.py`'s small model (MLP 32-64-1, batch 16, `--steps` per epoch)
or its two-head one (`--model two-head`). Counting
starts when the second epoch begins (the first traces and compiles the
step) and stops when the last one ends, so it covers whole epochs: every
step, Keras's loop around it, and the epoch-level hooks of every callback.
A last callback that overrides `on_train_batch_end` is attached in every
configuration: it makes Keras call batch-end hooks on the main thread
(TensorFlow always does; JAX and PyTorch would otherwise hand them to a
thread whose polling varies with thread timing), so that they are counted.

Needs Valgrind and a C compiler for its client-request header (Debian,
Ubuntu: `apt-get install valgrind gcc`). About 1-3 minutes per
configuration on one core.

    python benchmarks/instructions.py [--backends jax tensorflow torch]
        [--configs bare (again) CosineDecayRestarts ...] [--model small]
        [--steps 1024]
        [--epochs 2] [--jobs 2] [--json out.json]
"""

import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile

from overhead import CONFIGS, MODELS, ONE_THREAD, save

# One function's line in `callgrind_annotate`: its count, then its name.
FUNCTION = re.compile(r"\s*([\d,]+) \([ \d.]+%\)\s+(.*)$")
# glibc's allocator (source files ./malloc/malloc.c, arena.c): its count
# varies by +-2% between identical runs (the heap's layout depends on
# when other threads allocate), so it is printed apart.
ALLOCATOR = "./malloc/"
HELPER = """
#include <valgrind/callgrind.h>
void count_start(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; }
void count_stop(void) {
  CALLGRIND_DUMP_STATS_AT("steps");
  CALLGRIND_STOP_INSTRUMENTATION;
}
"""


def child(kind, model_name, steps, epochs, helper):
    import ctypes

    import keras
    import numpy as np
    from _fits import callbacks, compiled

    count = ctypes.CDLL(helper)
    spec = dict(MODELS[model_name], steps=steps)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(steps * spec["batch"], spec["inputs"])).astype("float32")
    y = rng.normal(size=(steps * spec["batch"], 1)).astype("float32")
    model, targets = compiled(kind, spec, y)

    class Start(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                count.count_start()

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == epochs:
                count.count_stop()

    class BatchEndOnThisThread(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            pass

    model.fit(
        x,
        targets,
        batch_size=spec["batch"],
        epochs=1 + epochs,
        shuffle=False,
        verbose=0,
        callbacks=[Start(), *callbacks(kind), Stop(), BatchEndOnThisThread()],
    )


def count(backend, kind, args, helper, workdir):
    """Main-thread instructions per counted step of one configuration."""
    out = os.path.join(workdir, f"{backend}-{CONFIGS.index(kind)}.out")
    env = dict(
        os.environ,
        KERAS_BACKEND=backend,
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONHASHSEED="0",
        **ONE_THREAD,
    )
    command = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--separate-threads=yes",
        f"--callgrind-out-file={out}",
        sys.executable,
        __file__,
        "--child",
        kind,
        "--model",
        args.model,
        "--steps",
        str(args.steps),
        "--epochs",
        str(args.epochs),
        "--helper",
        helper,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    main_thread = f"{out}.1-01"  # first dump (the client request), thread 1
    if done.returncode or not os.path.exists(main_thread):
        raise RuntimeError(f"{backend} {kind}: failed\n{done.stderr[-3000:]}")
    listing = subprocess.run(
        ["callgrind_annotate", "--inclusive=no", "--threshold=100", main_thread],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    total = allocator = 0
    for line in listing.splitlines():
        found = FUNCTION.match(line)
        if found is None or "PROGRAM TOTALS" in line:
            continue
        instructions = int(found.group(1).replace(",", ""))
        total += instructions
        if ALLOCATOR in found.group(2):
            allocator += instructions
    counted = args.steps * args.epochs
    return {"other": (total - allocator) / counted, "allocator": allocator / counted}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["jax", "tensorflow", "torch"])
    parser.add_argument(
        "--configs",
        nargs="+",
        default=[
            "bare (again)",
            "CosineDecayRestarts",
            "constant schedule",
            "LearningRateScheduler",
            "5 empty callbacks",
            "preset(multiphase, peak_lr=1e-3)",
            "preset(multiphase)",
        ],
        choices=CONFIGS[1:],
    )
    parser.add_argument("--model", default="small", choices=MODELS)
    parser.add_argument("--steps", type=int, default=1024, help="steps per epoch")
    parser.add_argument("--epochs", type=int, default=2, help="epochs counted")
    parser.add_argument("--jobs", type=int, default=2, help="processes at a time")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--keep", help="keep callgrind's files in this folder")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--helper", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.model, args.steps, args.epochs, args.helper)
        return
    missing = [tool for tool in ("valgrind", "gcc") if shutil.which(tool) is None]
    if missing:
        sys.exit(f"needs {' and '.join(missing)}: apt-get install valgrind gcc")
    configs = ["bare", *args.configs]
    with tempfile.TemporaryDirectory() as workdir:
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
            workdir = args.keep
        source = os.path.join(workdir, "count.c")
        helper = os.path.join(workdir, "libcount.so")
        with open(source, "w") as f:
            f.write(HELPER)
        subprocess.run(["gcc", "-shared", "-fPIC", "-o", helper, source], check=True)
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            futures = {
                (b, k): pool.submit(count, b, k, args, helper, workdir)
                for b in args.backends
                for k in configs
            }
            results = {
                b: {k: futures[b, k].result() for k in configs} for b in args.backends
            }
    print(
        f"\n{args.model} model, {args.steps} steps/epoch, "
        f"{args.epochs} epochs counted: "
        "main-thread instructions per step outside glibc's allocator, the "
        "difference with `bare`, and [the allocator's, which varies by +-2% "
        "between identical runs]"
    )
    print(f"{'':<34}" + "".join(f"{b:>34}" for b in args.backends))
    for kind in configs:
        cells = []
        for b in args.backends:
            value, bare = results[b][kind], results[b]["bare"]
            alloc = f"[{value['allocator']:,.0f}]"
            if kind == "bare":
                cells.append(f"{value['other']:>12,.0f} {alloc:>10}")
                continue
            added = value["other"] - bare["other"]
            share = added / bare["other"] * 100
            cells.append(f"{added:>+9,.0f} ({share:+.2f}%) {alloc:>10}")
        print(f"{kind:<34}" + "".join(f"{c:>34}" for c in cells))
    if args.json:
        save(args.json, results, model=args.model, steps=args.steps, epochs=args.epochs)


if __name__ == "__main__":
    main()
