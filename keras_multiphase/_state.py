"""Callback state that lives on the optimizer.

What the compiled step reads is a `keras.Variable` tracked by the
(innermost) optimizer: JAX captures any variable the optimizer does not
track as a constant when the train step is traced (docs/design.md, fact 1).
That is the rate table (in the slot of the optimizer's own
`learning_rate` variable, which the step no longer reads), a cycled
momentum, and, only when the rate is evaluated from the formulas in the
step, every callback's state. Otherwise a callback's epoch-level state
(plateau counters, phase ends, the auto peak) is `HostState`: NumPy on the
host, read and written between epochs without a device transfer. All of it
is written into checkpoints, which is how `BackupAndRestore` resumes plateau
counters and phases.

To keep checkpoints loadable by a model built without this package, the
optimizer's own store keeps exactly the variables a plain optimizer has; this
package's variables are written to a separate child entry,
`optimizer/_keras_multiphase_patched`, that a plain model never reads
(Keras's saver names the entry after the first attribute through which it
meets the store; `_keras_multiphase_patched` and `_keras_multiphase_state`
hold the same one).
"""

from __future__ import annotations

import re
import warnings
import weakref

import keras
import numpy as np

from keras_multiphase import _keras_internals
from keras_multiphase._distribution import agree, creation_scope, process_count

KerasSaveable = _keras_internals.saveable_base()

_ATTR = "_keras_multiphase_state"
_RATE_KEY = "optimizer_learning_rate"


def unwrap_optimizer(optimizer):
    """Returns the optimizer that owns the learning rate and variables."""
    while hasattr(optimizer, "inner_optimizer"):
        optimizer = optimizer.inner_optimizer
    return optimizer


class HostState:
    """A callback's epoch-level state value, kept in NumPy on the host.

    Written and read only by callbacks between epochs (a plateau counter, a
    phase's end, the auto peak), it needs no device copy: assigning a
    `keras.Variable` from a callback costs a host-to-device transfer, and
    reading it back a device-to-host one, at every epoch end. It has the
    members of `keras.Variable` the callbacks use (`shape`, `numpy`,
    `assign`, `value`). When the step has to read it (the rate evaluated
    from the formulas in the step, `StateStore.track_all`) it is given a
    tracked variable (`variable`) and every member uses that from then on.
    Checkpoints store it like a variable (`StateStore.save_own_variables`).
    """

    def __init__(self, key: str, value):
        self.key = key
        self._value = np.array(value, dtype="float32")
        self.variable: keras.Variable | None = None

    @property
    def shape(self) -> tuple:
        return self._value.shape

    def numpy(self) -> np.ndarray:
        if self.variable is not None:
            return np.asarray(self.variable.numpy())
        return self._value.copy()

    def assign(self, value) -> None:
        if self.variable is not None:
            self.variable.assign(value)
        else:
            self._value = np.array(value, dtype="float32").reshape(self._value.shape)

    @property
    def value(self):
        """The value for `keras.ops`: the tracked variable's inside a step."""
        if self.variable is not None:
            return self.variable.value
        return keras.ops.convert_to_tensor(self._value)


class HostStore:
    """The state store of `preview`: plain values, nothing tracked."""

    def variable(self, key: str, value, in_step: bool = False) -> HostState:
        # The same host-side state training keeps between epochs.
        return HostState(key, value)


class StateStore(KerasSaveable):
    """Named float32 variables tracked by one optimizer."""

    def __init__(self, optimizer):
        # A weak reference: Keras's saver walks attributes, and a plain one
        # back to the optimizer would be a cycle.
        self._optimizer = weakref.ref(optimizer)
        self._vars: dict[str, keras.Variable | HostState] = {}
        # key -> the callback holding it (or the last one, once released).
        self._owners: dict[str, object] = {}
        self._released: set[str] = set()
        # Variables of keys taken over by a new callback: they get the new
        # callback's initial values when it asks for them.
        self._stale: set[str] = set()
        self._retired: list[keras.Variable] = []
        # Variables the compiled step reads (the composed rate's table, a
        # cycled momentum; every variable while the rate is evaluated from
        # the schedules' formulas). The others are epoch-level state, read
        # and written only by callbacks between epochs: kept out of the
        # optimizer's variables, so a JAX step does not carry them in and
        # out at every step (a cost per variable: benchmarks/README.md).
        self._tracked: set[int] = set()
        self._track_all = False
        # Derived, per-fit variables (the rate table): tracked, never saved.
        self._scratch: dict[str, keras.Variable] = {}
        # id(scratch variable) -> the optimizer variable whose slot it holds.
        self._displaced: dict[int, keras.Variable] = {}
        # While a composed rate is installed: (rate variable, function giving
        # the rate in effect). Checkpoints store that rate in the optimizer's
        # own `learning_rate` slot, so a plain model resumes at it, and keep
        # the real value of the variable here.
        self.effective_rate = None

    def _obj_type(self):
        return "Loss"  # any accepted kind: only its attribute skip list differs

    def claim_key(self, prefix: str, owner, new_run: bool | None = None) -> str:
        """A stable key for `owner`: `prefix`, then `prefix_1`, ...

        Keys follow the order in which callbacks attach (their order in the
        callback list), so a resumed run finds its state under the same keys.
        A key released by a callback whose fit ended is taken over by the
        next callback of the same class: fresh callbacks for every `fit` do
        not add variables to the optimizer.

        `new_run`: the fit starts a new run (True: the key's variables are
        reset to the owner's initial values when it asks for them), or
        continues one (False: they keep their values, so fresh callbacks
        continue the trajectory). None (no fit known): a taken-over key is
        reset, the same owner's is kept.
        """
        for key, other in self._owners.items():
            if other is owner:
                self._released.discard(key)
                if new_run:
                    self._mark_stale(key)
                return key
        pattern = re.compile(rf"{re.escape(prefix)}(_\d+)?")
        for key in self._owners:
            if key in self._released and pattern.fullmatch(key):
                self._owners[key] = owner
                self._released.discard(key)
                if new_run is not False:
                    self._mark_stale(key)
                return key
        i = 0
        key = prefix
        while key in self._owners:
            i += 1
            key = f"{prefix}_{i}"
        self._owners[key] = owner
        return key

    def _mark_stale(self, key: str) -> None:
        self._stale.update(v for v in self._vars if v.startswith(f"{key}."))

    def release(self, owner) -> None:
        """`owner`'s fit ended: its key may be taken over (its values stay
        until then, so the same callback continues where it was)."""
        for key, other in self._owners.items():
            if other is owner:
                self._released.add(key)

    def agree(self) -> None:
        """Under several processes, every state value becomes process 0's
        (`_distribution.agree`): what sets the rates, loss weights and
        batch sizes is then the same everywhere by construction."""
        if process_count() == 1:
            return
        agreed = agree({k: v.numpy() for k, v in sorted(self._vars.items())})
        for key, value in agreed.items():
            self._vars[key].assign(value)

    def variable(self, key: str, value, in_step: bool = False) -> keras.Variable:
        """Returns the variable `key`, creating it with `value` if new (or
        resetting it to `value` when its key was marked for reset by
        `claim_key`).

        `in_step=True`: the compiled step reads it, so the optimizer tracks
        it (JAX freezes untracked variables into the traced step).
        """
        value = np.asarray(value, dtype="float32")
        var = self._vars.get(key)
        stale = key in self._stale
        self._stale.discard(key)
        if var is not None and tuple(var.shape) != value.shape:
            # Another shape (e.g. another number of phases): a new
            # variable; the old one stays ours (and tracked, if it was).
            self._retired.append(var)
            var = None
        elif var is not None and stale:
            var.assign(value)
        if var is None:
            if in_step:
                var = self._new_variable(key, value, tracked=True)
            else:
                var = HostState(key, value)
            self._vars[key] = var
        if isinstance(var, HostState) and (in_step or self._track_all):
            self._promote(var)
            if in_step:
                return var.variable
        return var

    def _promote(self, state: HostState) -> None:
        """Gives `state` a tracked `keras.Variable` holding its value: the
        step reads it from now on."""
        if state.variable is None:
            state.variable = self._new_variable(state.key, state.numpy(), True)

    def scratch(self, key: str, shape: tuple, in_place_of=None) -> keras.Variable:
        """A tracked variable of `shape` that checkpoints leave out (derived
        from the saved state when a fit starts); reused while its shape
        fits.

        `in_place_of`: a variable of the optimizer that the step stops
        reading while the scratch variable is in use (its own learning
        rate, replaced by the rate table). The scratch variable takes its
        slot among the optimizer's variables instead of adding one (a JAX
        step carries every variable in and out, and `fit` walks them at
        every step); checkpoints still store the displaced variable there,
        and `restore_displaced` puts it back.
        """
        var = self._scratch.get(key)
        if var is None or tuple(var.shape) != tuple(shape):
            old, var = var, self._new_variable(key, np.zeros(shape, "float32"), False)
            self._scratch[key] = var
            if old is not None:
                self._retired.append(old)
                if id(old) in self._tracked:  # the new one takes its slot
                    self._replace(old, var)
                    if id(old) in self._displaced:
                        self._displaced[id(var)] = self._displaced.pop(id(old))
        if id(var) in self._tracked:
            return var
        optimizer = self._optimizer()
        if in_place_of is not None and any(
            v is in_place_of for v in optimizer.variables
        ):
            self._replace(in_place_of, var)
            self._displaced[id(var)] = in_place_of
        else:
            self._track(var)
        return var

    def _replace(self, old, new) -> None:
        _keras_internals.replace_optimizer_variable(
            unwrap_optimizer(self._optimizer()), old, new
        )
        self._tracked.discard(id(old))
        self._tracked.add(id(new))

    def restore_displaced(self) -> None:
        """Gives displaced variables their slots back (the fit is over):
        the optimizer's variables are those it was built with again."""
        for var in (*self._scratch.values(), *self._retired):
            original = self._displaced.pop(id(var), None)
            if original is not None:
                self._replace(var, original)

    def displaced_by(self, variable):
        """The optimizer variable whose slot `variable` holds (or None)."""
        return self._displaced.get(id(variable))

    def track_all(self) -> None:
        """Tracks every variable, now and later: the step evaluates the
        schedules' formulas, which read them."""
        self._track_all = True
        for var in self._vars.values():
            if isinstance(var, HostState):
                self._promote(var)
            else:
                self._track(var)

    def _new_variable(self, key: str, value, tracked: bool) -> keras.Variable:
        safe = "keras_multiphase_" + key.replace("/", "_").replace(".", "_")
        optimizer = self._optimizer()
        with creation_scope(optimizer):
            if tracked:
                var = optimizer.add_variable(
                    value.shape, initializer="zeros", dtype="float32", name=safe
                )
                var.assign(value)
                self._tracked.add(id(var))
                return var
            return keras.Variable(value, dtype="float32", trainable=False, name=safe)

    def _track(self, var) -> None:
        if id(var) not in self._tracked:
            _keras_internals.track_optimizer_variable(self._optimizer(), var)
            self._tracked.add(id(var))

    def owns(self, variable) -> bool:
        return any(
            variable is v or variable is getattr(v, "variable", None)
            for v in (*self._vars.values(), *self._scratch.values(), *self._retired)
        )

    def save_own_variables(self, store):
        for key, var in self._vars.items():
            store[key] = np.asarray(var.numpy())
        if self.effective_rate is not None:
            store[_RATE_KEY] = np.asarray(self.effective_rate[0].numpy())

    def load_own_variables(self, store):
        for key in store.keys():
            if key in self._vars:
                self._vars[key].assign(store[key])
        if _RATE_KEY in store.keys() and self.effective_rate is not None:
            self.effective_rate[0].assign(store[_RATE_KEY])

    def saved_value(self, variable):
        """What the optimizer's own store holds for `variable`."""
        if self.effective_rate is not None and variable is self.effective_rate[0]:
            return np.asarray(self.effective_rate[1](), dtype="float32")
        return variable.numpy()


def _plain_variables(optimizer, state):
    """The variables a plain optimizer has, in its order: this package's
    are left out, a displaced one is put back in its slot."""
    plain = []
    for var in optimizer.variables:
        displaced = state.displaced_by(var)
        if displaced is not None:
            plain.append(displaced)
        elif not state.owns(var):
            plain.append(var)
    return plain


def _patch_saving(optimizer, state) -> None:
    """Makes `optimizer` save and load only its plain variables."""

    def save_own_variables(store):
        for i, var in enumerate(_plain_variables(optimizer, state)):
            store[str(i)] = state.saved_value(var)

    def load_own_variables(store):
        plain = _plain_variables(optimizer, state)
        if len(store.keys()) != len(plain):
            warnings.warn(
                f"Skipping variable loading for optimizer '{optimizer.name}',"
                f" because it has {len(plain)} variables whereas the saved "
                f"optimizer has {len(store.keys())} variables.",
                stacklevel=2,
            )
            return
        for i, var in enumerate(plain):
            var.assign(store[str(i)])

    def get_config():
        # A `.keras` file saved while a composed rate is installed stores the
        # rate in effect as a float, so it loads without this package.
        config = type(optimizer).get_config(optimizer)
        rate = _keras_internals.learning_rate_object(optimizer)
        if hasattr(rate, "current_rate"):
            config["learning_rate"] = rate.get_config()["learning_rate"]
        for name in ("beta_1", "momentum"):  # cycled by OneCycle
            if isinstance(config.get(name), keras.Variable):
                config[name] = float(np.asarray(config[name].numpy()))
        return config

    # Instance attributes: only this optimizer is affected.
    _keras_internals.replace_saving_hooks(
        optimizer, save_own_variables, load_own_variables, get_config
    )


def state_store(optimizer) -> StateStore:
    """Returns the state store of `optimizer`, installing it if needed.

    Wrappers such as `LossScaleOptimizer` list the inner optimizer's
    variables as theirs, so they are patched too.
    """
    inner = unwrap_optimizer(optimizer)
    state = _keras_internals.attached(inner, _ATTR)
    if state is None:
        state = StateStore(inner)
        _keras_internals.attach(inner, _ATTR, state)
    opt = optimizer
    while True:
        if _keras_internals.attached(opt, "_keras_multiphase_patched") is not state:
            _patch_saving(opt, state)
            _keras_internals.attach(opt, "_keras_multiphase_patched", state)
        if opt is inner:
            return state
        opt = opt.inner_optimizer
