"""Builds the Colab notebooks from their plain `.py` twins.

Each `NN_name.py` in this folder is a notebook in "percent" form: cells
start with `# %%` (code) or `# %% [markdown]` (markdown, each line a `# `
comment). The builder adds the "Open in Colab" badge and the install cell
(`%pip install` of this repository, whose address is `url` in setup.cfg)
and writes `NN_name.ipynb` next to it. The test suite executes the `.ipynb`
cells (with KERAS_MULTIPHASE_SMALL=1) and checks it matches its twin.

    python examples/notebooks/build.py          # rewrite the notebooks
    python examples/notebooks/build.py --check  # exit 1 if one is stale
"""

from __future__ import annotations

import configparser
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def repository_url() -> str:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config["metadata"]["url"].rstrip("/")


def cells_of(source: str) -> list[tuple[str, str]]:
    cells, kind, lines = [], None, []
    for line in source.splitlines():
        if line.startswith("# %%"):
            if kind is not None:
                cells.append((kind, "\n".join(lines).strip("\n")))
            kind = "markdown" if "[markdown]" in line else "code"
            lines = []
        elif kind == "markdown":
            lines.append(line[2:] if line.startswith("# ") else line.lstrip("#"))
        elif kind is not None:
            lines.append(line)
    if kind is not None:
        cells.append((kind, "\n".join(lines).strip("\n")))
    return cells


def _cell(kind: str, text: str) -> dict:
    cell = {
        "cell_type": kind,
        "metadata": {},
        "source": text.splitlines(keepends=True),
    }
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def notebook(twin: pathlib.Path) -> dict:
    url = repository_url()
    path = twin.with_suffix(".ipynb").relative_to(ROOT).as_posix()
    colab = url.replace(
        "https://github.com/", "https://colab.research.google.com/github/"
    )
    badge = (
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"({colab}/blob/main/{path})"
    )
    install = f'%pip install -q "keras-multiphase @ git+{url}"'
    cells = cells_of(twin.read_text())
    if not cells or cells[0][0] != "markdown":
        raise ValueError(f"{twin}: the first cell must be markdown (the title)")
    title_kind, title = cells[0]
    body = [_cell(title_kind, f"{title}\n\n{badge}"), _cell("code", install)]
    body += [_cell(kind, text) for kind, text in cells[1:]]
    return {
        "cells": body,
        "metadata": {
            "colab": {"provenance": []},
            "kernelspec": {"display_name": "Python 3", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def twins() -> list[pathlib.Path]:
    return sorted(p for p in HERE.glob("[0-9][0-9]_*.py"))


def render(twin: pathlib.Path) -> str:
    return json.dumps(notebook(twin), indent=1, ensure_ascii=False) + "\n"


def main(argv) -> int:
    stale = []
    for twin in twins():
        target = twin.with_suffix(".ipynb")
        text = render(twin)
        if "--check" in argv:
            if not target.exists() or target.read_text() != text:
                stale.append(target.name)
        else:
            target.write_text(text)
            print(f"wrote {target.relative_to(ROOT)}")
    if stale:
        print(f"stale notebooks (run {__file__}): {stale}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
