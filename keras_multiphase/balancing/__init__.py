"""Loss-weight strategies: pure NumPy functions of the component losses."""

from keras_multiphase.balancing.strategies import (
    STRATEGIES,
    dwa_weights,
    magnitude_weights,
)

__all__ = ["STRATEGIES", "dwa_weights", "magnitude_weights"]
