"""Private Keras API is touched in one module only: `_keras_internals.py`."""

import ast
import pathlib

import keras_multiphase

PACKAGE = pathlib.Path(keras_multiphase.__file__).parent
SEAM = PACKAGE / "_keras_internals.py"


def modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if p != SEAM)


def own_private_names() -> set:
    """`_names` the package itself defines: attributes it assigns, its
    functions, methods and classes."""
    names = set()
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif (
                isinstance(node, ast.Call)
                and ast.unparse(node.func) == "object.__setattr__"
                and isinstance(node.args[1], ast.Constant)
            ):
                names.add(node.args[1].value)
    return names


def private_touches(tree, own):
    """(line, text) of each `x._name` or `getattr(x, "_name")` whose name the
    package does not define, and of each `keras.src` import."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            module = getattr(node, "module", None) or ""
            if "keras.src" in module or any("keras.src" in a.name for a in node.names):
                found.append((node.lineno, ast.unparse(node)))
        name = None
        if isinstance(node, ast.Attribute):
            name = node.attr
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr", "setattr")
            and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            name = node.args[1].value
        if name and name.startswith("_") and not name.startswith("__"):
            if name not in own:
                found.append((node.lineno, ast.unparse(node)))
    return found


def test_no_private_keras_api_outside_the_seam():
    own = own_private_names()
    touches = {
        str(path.relative_to(PACKAGE)): private_touches(
            ast.parse(path.read_text()), own
        )
        for path in modules()
    }
    assert {k: v for k, v in touches.items() if v} == {}


def test_the_check_finds_a_private_touch():
    own = own_private_names()
    tree = ast.parse(
        "from keras.src.utils import io_utils\n"
        "rate = optimizer._learning_rate\n"
        "flat = getattr(loss, '_flat_losses', None)\n"
    )
    assert [line for line, _ in private_touches(tree, own)] == [1, 2, 3]


def test_every_seam_function_says_why():
    tree = ast.parse(SEAM.read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            doc = ast.get_docstring(node) or ""
            assert len(doc) > 50, node.name
