"""The dominant head's reach per problem (issue 35): its target's root
mean square over its features' mean L1 norm plus 1, on the inputs
`normalize_heads(units="auto")` feeds (standardised unless a nested
backbone reads them), mean over 3 seeds. `units="auto"` centres a head
above `keras_multiphase.units.REACH` (5).

    KERAS_BACKEND=jax python benchmarks/units_reach.py collapse digits conv_bn
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import problems  # noqa: E402
import problems_arch  # noqa: E402
import problems_holdout  # noqa: E402

from keras_multiphase.units import (  # noqa: E402
    REACH,
    backbone_inputs,
    reach_ratio,
    standardized_arrays,
)

ALL = {
    **problems.PROBLEMS,
    **problems.HELD_OUT,
    **problems_arch.ARCHITECTURES,
    **problems_holdout.HOLDOUT,
}

for name in sys.argv[1:]:
    problem = ALL[name]
    ratios = []
    for seed in range(3):
        x, y, _, _ = problem.data(seed)
        model = problem.model(seed)
        float_input = np.issubdtype(x.dtype, np.floating)
        fed = standardized_arrays(
            [x], {0} if float_input and not backbone_inputs(model) else set()
        )
        head = model.get_layer(problem.dominant)
        ratios.append(reach_ratio(model, head, fed, y[problem.dominant]))
    centred = "centred" if np.mean(ratios) > REACH else "as it is"
    print(f"{name:15s} reach ratio {np.mean(ratios):9.2f}  ({centred})", flush=True)
