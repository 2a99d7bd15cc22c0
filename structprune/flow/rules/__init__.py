"""Channel-flow rules for torch ops; importing this package registers them all."""

from structprune.flow.rules import (  # noqa: F401
    concat,
    elementwise,
    expand,
    factory,
    indexing,
    layers_functional,
    matmul,
    reduce,
    reshape,
)
