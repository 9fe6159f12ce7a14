"""Functions short enough to read at once: at most 60 lines of code each
(blank lines, comments and the docstring not counted)."""

import ast
import pathlib

import keras_multiphase

PACKAGE = pathlib.Path(keras_multiphase.__file__).parent
LIMIT = 60


def lines_of_code(lines, node) -> int:
    body = node.body
    docstring = set()
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        docstring = set(range(body[0].lineno, body[0].end_lineno + 1))
    return sum(
        1
        for i in range(node.lineno, node.end_lineno + 1)
        if i not in docstring
        and lines[i - 1].strip()
        and not lines[i - 1].strip().startswith("#")
    )


def long_functions(source: str, where: str, limit: int = LIMIT) -> list:
    lines = source.splitlines()
    return [
        (f"{where}:{node.lineno} {node.name}", lines_of_code(lines, node))
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and lines_of_code(lines, node) > limit
    ]


def test_no_function_over_the_limit():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        found += long_functions(path.read_text(), str(path.relative_to(PACKAGE)))
    assert found == []


def test_the_count_skips_docstrings_comments_and_blanks():
    source = (
        'def f():\n    """Doc\n    string."""\n    # note\n\n    a = 1\n    return a\n'
    )
    assert long_functions(source, "x.py", limit=1) == [("x.py:1 f", 3)]
