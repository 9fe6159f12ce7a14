"""What users pick instead of a schedule: Schedule-Free AdamW and Prodigy,
ported to Keras 3 for the suite.

Keras has neither optimizer. These ports follow the PyTorch packages users
install (`schedulefree`'s `AdamWScheduleFree`, `prodigyopt`'s `Prodigy`)
line for line, at the packages' defaults, and `tests/test_peers.py` checks
them step by step against those packages on every backend.

- `ScheduleFreeAdamW` (Defazio et al. 2024, "The Road Less Scheduled"):
  the model's weights hold `y`, where gradients are taken; the optimizer
  keeps `z` (the base iterate) and `x` (the weighted average). Validation
  and the end of `fit` use `x`: pass `ScheduleFreeEval()` among the
  callbacks, as the package asks for `optimizer.eval()` / `.train()`.
- `Prodigy` (Mishchenko & Defazio 2023): Adam whose step size `d * lr`
  is estimated from the gradients seen so far (`lr` stays 1).

Both need one quantity over all variables before any is updated (the
averaging weight; Prodigy's `d`), so each overrides the optimizer's
collective update step, a private Keras method (`_backend_update_step`):
acceptable in a benchmark, and the reason neither ships in the package.

Example:

```python
model.compile(optimizer=ScheduleFreeAdamW(), loss="mse")
model.fit(x, y, epochs=3, callbacks=[ScheduleFreeEval()])
model.compile(optimizer=Prodigy(), loss="mse")
```
"""

from __future__ import annotations

import keras
from keras import ops


class ScheduleFreeAdamW(keras.optimizers.Optimizer):
    """Schedule-Free AdamW, `schedulefree.AdamWScheduleFree` in Keras 3.

    Args:
        learning_rate: The package's `lr` (default 0.0025).
        beta_1: Interpolation between `x` and `z` for `y` (0.9).
        beta_2: The second-moment average (0.999).
        epsilon: Added to the root (1e-8).
        weight_decay: Decoupled, taken at `y` (0).
        warmup_steps: A linear warmup of the rate over this many steps (0).
        r: Polynomial weighting of the average (0).
        weight_lr_power: The average weights each step by `lr_max **
            weight_lr_power` (2).
    """

    def __init__(
        self,
        learning_rate=0.0025,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        weight_decay=0.0,
        warmup_steps=0,
        r=0.0,
        weight_lr_power=2.0,
        name="schedule_free_adamw",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.decay, self.warmup_steps = weight_decay, warmup_steps
        self.r, self.weight_lr_power = r, weight_lr_power

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._z = [self.add_variable_from_reference(v, "z") for v in var_list]
        self._x = [self.add_variable_from_reference(v, "x") for v in var_list]
        self._v = [self.add_variable_from_reference(v, "v") for v in var_list]
        for v, z, x in zip(var_list, self._z, self._x, strict=True):
            z.assign(ops.copy(v))  # copies: JAX must not see one buffer twice
            x.assign(ops.copy(v))
        self._lr_max = self.add_variable((), name="lr_max", initializer="zeros")
        self._weight_sum = self.add_variable((), name="weight_sum", initializer="zeros")

    def _averaging(self, learning_rate):
        """(rate, ckp1) for this step; updates lr_max and the weight sum."""
        k = ops.cast(self.iterations, "float32")
        sched = (
            ops.minimum((k + 1.0) / self.warmup_steps, 1.0)
            if self.warmup_steps
            else 1.0
        )
        lr = ops.cast(learning_rate, "float32") * sched
        lr_max = ops.maximum(self._lr_max.value, lr)
        weight = (k + 1.0) ** self.r * lr_max**self.weight_lr_power
        weight_sum = self._weight_sum.value + weight
        self._lr_max.assign(lr_max)
        self._weight_sum.assign(weight_sum)
        ckp1 = ops.where(weight_sum > 0, weight / ops.maximum(weight_sum, 1e-38), 0.0)
        return lr, ckp1, 1.0 - self.beta_2 ** (k + 1.0)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        lr, ckp1, correction = self._averaging(learning_rate)
        for grad, y in zip(grads, trainable_variables, strict=True):
            i = self._get_variable_index(y)
            z, x, v = self._z[i], self._x[i], self._v[i]
            grad = ops.cast(grad, y.dtype)
            if self.decay:
                z.assign(z - lr * self.decay * y)
            v.assign(self.beta_2 * v + (1.0 - self.beta_2) * grad * grad)
            z.assign(z - lr * grad / (ops.sqrt(v / correction) + self.epsilon))
            x.assign((1.0 - ckp1) * x + ckp1 * z)
            y.assign(self.beta_1 * x + (1.0 - self.beta_1) * z)

    def update_step(self, gradient, variable, learning_rate):
        raise NotImplementedError("updates go through _backend_update_step")

    def averaged(self, variable):
        """`x` for a model variable: what the package's `eval()` puts there."""
        return self._x[self._get_variable_index(variable)]

    def interpolated(self, variable):
        """`y = beta_1 * x + (1 - beta_1) * z`: what `train()` puts there."""
        i = self._get_variable_index(variable)
        return self.beta_1 * self._x[i] + (1.0 - self.beta_1) * self._z[i]

    def get_config(self):
        config = super().get_config()
        config.update(
            beta_1=self.beta_1,
            beta_2=self.beta_2,
            epsilon=self.epsilon,
            weight_decay=self.decay,
            warmup_steps=self.warmup_steps,
            r=self.r,
            weight_lr_power=self.weight_lr_power,
        )
        return config


class ScheduleFreeEval(keras.callbacks.Callback):
    """Evaluates a `ScheduleFreeAdamW` model at the averaged point `x`.

    Validation during `fit` sees `x` and training resumes at `y`; `fit`
    ends with `x` in the weights (the package's `optimizer.eval()`), and a
    later `fit` starts again from `y` (its `optimizer.train()`).
    """

    def __init__(self):
        super().__init__()
        self._training, self._y = False, []

    def _variables(self):
        """(the optimizer, the model's trainable variables), or (None, [])
        for another optimizer or one not built yet."""
        optimizer = self.model.optimizer
        if not isinstance(optimizer, ScheduleFreeAdamW) or not optimizer.built:
            return None, []
        return optimizer, self.model.trainable_variables

    def _to_x(self):
        optimizer, variables = self._variables()
        self._y = [(v, ops.copy(v.value)) for v in variables]
        for v in variables:
            v.assign(ops.copy(optimizer.averaged(v)))

    def on_train_begin(self, logs=None):
        self._training = True
        optimizer, variables = self._variables()
        for v in variables:  # y from x and z, as the package's train() does
            v.assign(optimizer.interpolated(v))

    def on_test_begin(self, logs=None):
        if self._training:
            self._to_x()

    def on_test_end(self, logs=None):
        if self._training:
            for v, value in self._y:
                v.assign(value)

    def on_train_end(self, logs=None):
        self._training = False
        self._to_x()


class Prodigy(keras.optimizers.Optimizer):
    """Prodigy, `prodigyopt.Prodigy` in Keras 3, at its defaults (no bias
    correction, no safeguard warmup, decoupled weight decay).

    Args:
        learning_rate: The package's `lr`, a multiplier of the estimated
            step `d` (1.0).
        beta_1, beta_2: Adam's (0.9, 0.999).
        beta_3: The average of the `d` estimate's statistics (None:
            `sqrt(beta_2)`).
        epsilon: 1e-8, times `d`.
        weight_decay: Decoupled (0).
        d0: The initial estimate of `d` (1e-6).
        d_coef: Multiplies the estimate (1.0).
        growth_rate: The most `d` may grow per step (inf).
    """

    def __init__(
        self,
        learning_rate=1.0,
        beta_1=0.9,
        beta_2=0.999,
        beta_3=None,
        epsilon=1e-8,
        weight_decay=0.0,
        d0=1e-6,
        d_coef=1.0,
        growth_rate=float("inf"),
        name="prodigy",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1, self.beta_2 = beta_1, beta_2
        self.beta_3 = beta_2**0.5 if beta_3 is None else beta_3
        self.epsilon, self.decay = epsilon, weight_decay
        self.d0, self.d_coef, self.growth_rate = d0, d_coef, growth_rate

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        slot = self.add_variable_from_reference
        self._m = [slot(v, "m") for v in var_list]
        self._v = [slot(v, "v") for v in var_list]
        self._s = [slot(v, "s") for v in var_list]
        self._p0 = [slot(v, "p0") for v in var_list]
        for v, p0 in zip(var_list, self._p0, strict=True):
            p0.assign(ops.copy(v))
        scalar = lambda name, value: self.add_variable(  # noqa: E731
            (), name=name, initializer=keras.initializers.Constant(value)
        )
        self._d = scalar("d", self.d0)
        self._d_max = scalar("d_max", self.d0)
        self._d_numerator = scalar("d_numerator", 0.0)

    def _statistics(self, grads, variables, lr):
        """Updates m, v and s; returns (numerator, denominator) of d_hat."""
        d = self._d.value
        dlr = d * lr
        numerator = self._d_numerator.value * self.beta_3
        denominator = 0.0
        for grad, p in zip(grads, variables, strict=True):
            i = self._get_variable_index(p)
            grad = ops.cast(grad, p.dtype)
            numerator += (d / self.d0) * dlr * ops.sum(grad * (self._p0[i] - p))
            m, v, s = self._m[i], self._v[i], self._s[i]
            m.assign(self.beta_1 * m + d * (1.0 - self.beta_1) * grad)
            v.assign(self.beta_2 * v + d * d * (1.0 - self.beta_2) * grad * grad)
            s.assign(self.beta_3 * s + (d / self.d0) * dlr * grad)
            denominator += ops.sum(ops.abs(s))
        return numerator, denominator

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        lr = ops.cast(learning_rate, "float32")
        d = self._d.value
        dlr = d * lr
        numerator, denominator = self._statistics(grads, trainable_variables, lr)
        # The package skips the step when every gradient so far is zero.
        moving = denominator > 0
        d_hat = self.d_coef * numerator / ops.where(moving, denominator, 1.0)
        d_new = ops.where(d == self.d0, ops.maximum(d, d_hat), d)
        d_max = ops.maximum(self._d_max.value, d_hat)
        d_new = ops.minimum(d_max, d_new * self.growth_rate)
        self._d_numerator.assign(ops.where(moving, numerator, self._d_numerator.value))
        self._d.assign(ops.where(moving, d_new, d))
        self._d_max.assign(ops.where(moving, d_max, self._d_max.value))
        for p in trainable_variables:
            i = self._get_variable_index(p)
            step = self._m[i] / (ops.sqrt(self._v[i]) + d_new * self.epsilon)
            # p - (decay * dlr) * p, as the package: 1 - decay * dlr would
            # round away a decay of 1e-8 in float32.
            decayed = p - self.decay * dlr * p if self.decay else p.value
            p.assign(ops.where(moving, decayed - dlr * step, p.value))

    def update_step(self, gradient, variable, learning_rate):
        raise NotImplementedError("updates go through _backend_update_step")

    def get_config(self):
        config = super().get_config()
        config.update(
            beta_1=self.beta_1,
            beta_2=self.beta_2,
            beta_3=self.beta_3,
            epsilon=self.epsilon,
            weight_decay=self.decay,
            d0=self.d0,
            d_coef=self.d_coef,
            growth_rate=self.growth_rate,
        )
        return config
