"""Command line: list presets and preview their schedules.

    python -m keras_multiphase presets
    python -m keras_multiphase preview multiphase --epochs 30 \\
        --steps-per-epoch 100 --out schedule.png
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

BACKENDS = ("jax", "torch", "tensorflow")


def _choose_backend() -> str | None:
    """With `KERAS_BACKEND` unset, Keras defaults to TensorFlow; when that
    is not installed, the first installed backend is used instead. Returns
    an error line when none is."""
    if os.environ.get("KERAS_BACKEND"):
        return None
    installed = [b for b in BACKENDS if importlib.util.find_spec(b) is not None]
    if not installed:
        return (
            "error: preview needs a Keras backend: pip install "
            "'keras-multiphase[jax]' (or [tensorflow], [torch])"
        )
    if "tensorflow" not in installed:
        os.environ["KERAS_BACKEND"] = installed[0]
    return None


def _table(schedule, epochs: int, steps_per_epoch: int) -> str:
    names = schedule["phase_names"]
    rows = [
        f"{'epoch':>5}  {'phase':<12} {'lr first step':>13} "
        f"{'lr min':>10} {'lr max':>10} {'batch':>6}"
    ]
    for epoch in range(epochs):
        part = slice(epoch * steps_per_epoch, (epoch + 1) * steps_per_epoch)
        rates = schedule["learning_rate"][part]
        index = int(schedule["phase"][part][0])
        phase = names[index] if index < len(names) else str(index)
        batch = int(schedule["batch_size"][part][0]) or "-"
        rows.append(
            f"{epoch + 1:>5}  {phase:<12} {rates[0]:>13.3e} "
            f"{rates.min():>10.3e} {rates.max():>10.3e} {batch!s:>6}"
        )
    return "\n".join(rows)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m keras_multiphase", description=__doc__.splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("presets", help="list the shipped presets")
    show = commands.add_parser("preview", help="print and plot a schedule")
    show.add_argument("preset", help="a shipped preset name or a YAML file")
    show.add_argument(
        "--epochs", type=int, required=True, help="epochs of the run (>= 1)"
    )
    show.add_argument(
        "--steps-per-epoch",
        type=int,
        required=True,
        help="training steps (batches) per epoch (>= 1): samples / batch size",
    )
    show.add_argument(
        "--base-lr",
        type=float,
        default=1e-3,
        help="the optimizer's rate; stands for an auto peak (found in training)",
    )
    show.add_argument(
        "--out",
        help="write the plot to this PNG file (needs matplotlib: the [plot] extra)",
    )
    return parser


def _preview(args) -> None:
    """Prints the schedule's table (and writes its plot)."""
    from keras_multiphase.preview import plot_schedule, preview

    schedule = preview(
        args.preset, args.epochs, args.steps_per_epoch, base_lr=args.base_lr
    )
    print(_table(schedule, args.epochs, args.steps_per_epoch))
    placeholder = schedule["peak_placeholder"]
    if placeholder:
        print(
            f"note: the peak is auto; the peak shown, {args.base_lr:g} "
            "(--base-lr), is a placeholder: the range test sets it when "
            "training starts."
        )
    if args.out:
        title = f"{args.preset}: {args.epochs} epochs x {args.steps_per_epoch} steps"
        plot_schedule(
            schedule, args.out, title + (" (placeholder peak)" if placeholder else "")
        )
        print(f"plot written to {args.out}")


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "presets":
        # Needs no backend: lists the YAML files, imports no Keras.
        from keras_multiphase._preset_files import presets

        print("\n".join(presets()))
        return 0
    problem = _choose_backend()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    try:
        _preview(args)
        return 0
    except (ValueError, OSError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
