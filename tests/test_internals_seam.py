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


# Attribute stores outside the seam on something other than `self` / `cls`,
# each on an object of this package's own (or Keras's public callback API),
# with why. Any other store, `setattr`, `object.__setattr__`, `delattr` or
# `__dict__` outside the seam fails the test: a Keras object is changed in
# `_keras_internals.py` only.
OWN_STORES = {
    ("_state.py", "state.variable"): "HostState, the package's own",
    ("engine/composer.py", "engine.origin"): "the engine",
    ("engine/composer.py", "store.effective_rate"): "StateStore",
    ("preview.py", "composer.params"): "the engine",
    ("preset.py", "callbacks[0].train_begin_notes"): "a callback of the package",
    ("preset.py", "callbacks[0].log_dir"): "a callback of the package",
    # Keras's public way for a callback to end `fit` (EarlyStopping's).
    ("callbacks/monitor.py", "self.model.stop_training"): "public Keras API",
}
# `cls` in `__init_subclass__` is the package's own callback class.
OWN_SETATTR = {
    ("callbacks/epoch_callback.py", "setattr(cls, hook, getattr(_Callback, hook))")
}
MUTATORS = ("setattr", "object.__setattr__", "delattr", "vars")


def mutations(tree, where: str):
    """(line, text) of each change of an object other than `self` / `cls`
    not listed as the package's own."""
    found = []
    for node in ast.walk(tree):
        text = None
        if isinstance(node, ast.Attribute) and isinstance(
            node.ctx, (ast.Store, ast.Del)
        ):
            base = node.value
            # A callback's `self.contribution` is its own object (the part
            # the engine evaluates), not one Keras owns.
            own = (isinstance(base, ast.Name) and base.id in ("self", "cls")) or (
                ast.unparse(base) == "self.contribution"
            )
            if not own:
                if (where, ast.unparse(node)) not in OWN_STORES:
                    text = ast.unparse(node)
        elif isinstance(node, ast.Call) and ast.unparse(node.func) in MUTATORS:
            target = node.args[0] if node.args else None
            on_self = isinstance(target, ast.Name) and target.id == "self"
            if not on_self and (where, ast.unparse(node)) not in OWN_SETATTR:
                text = ast.unparse(node)
        elif isinstance(node, ast.Attribute) and node.attr == "__dict__":
            if not (isinstance(node.value, ast.Name) and node.value.id == "cls"):
                text = ast.unparse(node)
        if text:
            found.append((node.lineno, text))
    return found


def test_no_keras_object_changed_outside_the_seam():
    found = {
        str(path.relative_to(PACKAGE)): mutations(
            ast.parse(path.read_text()), str(path.relative_to(PACKAGE))
        )
        for path in modules()
    }
    assert {k: v for k, v in found.items() if v} == {}


def test_the_check_finds_each_kind_of_change():
    tree = ast.parse(
        "optimizer.get_config = get_config\n"
        "object.__setattr__(compile_loss, 'build', build)\n"
        "setattr(model, 'train_function', None)\n"
        "state = optimizer.__dict__.get('_stash')\n"
        "del model.train_function\n"
        "self.ok = 1\n"
        "self.contribution.scale = variable\n"
        "self.model.optimizer.learning_rate = 1\n"
    )
    found = sorted(line for line, _ in mutations(tree, "x.py"))
    assert found == [1, 2, 3, 4, 5, 8]
