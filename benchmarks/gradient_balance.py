"""An experiment (JAX only): per-head gradients on the shared trunk.

Issue 24 asks whether a gradient-based method lifts the small heads without
spending the dominant one. `protected(model, dominant, mode)` returns the
same layers behind a train step that takes one gradient per head and
combines them on the trunk's variables (those outside the output layers):

- `sum`: the plain sum (a check: the same as Keras's step with unit loss
  weights);
- `normalized`: each small head's trunk gradient rescaled to the dominant
  head's norm, then summed (GradNorm's equal-norm target, without its
  learned weights);
- `protected`: as `normalized`, with the part of each small head's trunk
  gradient that conflicts with the dominant head's removed (PCGrad's
  projection applied one way: the dominant head's direction is never
  changed; Yu et al. 2020, Du et al. 2018).

Each head's own layer gets its own gradient. The step costs one backward
pass per head more than Keras's. Used by `suite.py --runs
multiphase+normalized multiphase+protected`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import keras
from keras.src.trainers import data_adapters

MODES = ("sum", "normalized", "protected")


class _PerHeadStep(keras.Model):
    """A functional model whose train step combines per-head gradients."""

    def setup(self, losses: dict, dominant: str, mode: str):
        self._head_losses = {n: keras.losses.get(v) for n, v in losses.items()}
        self._dominant, self._mode = dominant, mode
        heads = tuple(f"{n}/" for n in losses)
        self._shared = [not v.path.startswith(heads) for v in self.trainable_variables]

    def _head_grads(self, tv, ntv, x, y):
        def head_loss(variables, name):
            pred, _ = self.stateless_call(variables, ntv, x, training=True)
            return jnp.mean(self._head_losses[name](y[name], pred[name]))

        return {n: jax.grad(head_loss)(tv, n) for n in self._head_losses}

    def _combine(self, grads: dict) -> list:
        dominant = grads[self._dominant]
        shared = [i for i, s in enumerate(self._shared) if s]

        def flat(g):
            return jnp.concatenate([jnp.ravel(g[i]) for i in shared])

        d = flat(dominant)
        d_norm2 = jnp.sum(d * d) + 1e-30
        out = [jnp.zeros_like(g) for g in dominant]
        for name, g in grads.items():
            coefficient, along = 1.0, 0.0
            if name != self._dominant and self._mode != "sum":
                a = flat(g)
                a_norm = jnp.sqrt(jnp.sum(a * a))
                # A head whose gradient vanished (a saturated sigmoid) adds 0.
                coefficient = jnp.where(
                    a_norm > 0, jnp.sqrt(d_norm2) / jnp.maximum(a_norm, 1e-30), 0.0
                )
                if self._mode == "protected":
                    dot = jnp.sum(a * d) * coefficient
                    along = jnp.minimum(dot, 0.0) / d_norm2
            for i, gi in enumerate(g):
                if self._shared[i]:
                    out[i] = out[i] + coefficient * gi - along * dominant[i]
                else:
                    out[i] = out[i] + gi
        return out

    def train_step(self, state, data):
        tv, ntv, ov, mv = state
        x, y, sample_weight = data_adapters.data_adapter_utils.unpack_x_y_sample_weight(
            data
        )
        (_, aux) = self.compute_loss_and_updates(
            tv, ntv, mv, x, y, sample_weight, training=True, optimizer_variables=ov
        )
        unscaled_loss, y_pred, ntv_after, mv = aux
        grads = self._combine(self._head_grads(tv, ntv, x, y))
        tv, ov = self.optimizer.stateless_apply(ov, grads, tv)
        logs, mv = self._update_metrics_variables(
            mv, unscaled_loss, x, y, y_pred, sample_weight
        )
        return logs, (tv, ntv_after, ov, mv)


def protected(model, losses: dict, dominant: str, mode: str):
    """`model`'s layers behind the per-head train step (JAX only)."""
    if keras.backend.backend() != "jax":
        raise ValueError("gradient_balance is a JAX-only experiment.")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}. Received: mode={mode!r}")
    outputs = dict(zip(model.output_names, model.outputs, strict=True))
    wrapped = _PerHeadStep(inputs=model.inputs, outputs=outputs)
    wrapped.setup(losses, dominant, mode)
    return wrapped
