"""Utilities (``tp.utils``): MAC and parameter counting, benchmarks, printing and drawing.

Example::

    macs, params = structprune.utils.count_ops_and_params(model, torch.randn(1, 3, 224, 224))
    mean_ms, std_ms = structprune.utils.benchmark.measure_latency(model, torch.randn(1, 3, 224, 224))
"""

import torch.nn as _nn

from structprune.utils import benchmark, op_counter  # noqa: F401  (tp.utils.benchmark.*, tp.utils.op_counter)
from structprune.utils.draw import draw_computational_graph, draw_dependency_graph, draw_groups
from structprune.utils.mac_rules import macs_of, register_mac_rule
from structprune.utils.nesting import flatten_as_list
from structprune.utils.op_counter import count_ops_and_params, count_ops_per_module, count_params
from structprune.utils.print_tool import print_tool

# Torch-Pruning's names for the torch base classes of the layers it knows (tp.utils.TORCH_CONV ...)
TORCH_CONV = _nn.modules.conv._ConvNd
TORCH_LINEAR = _nn.Linear
TORCH_BATCHNORM = _nn.modules.batchnorm._BatchNorm
TORCH_PRELU = _nn.PReLU

__all__ = [
    "count_ops_and_params", "count_ops_per_module", "count_params", "macs_of", "register_mac_rule",
    "benchmark", "print_tool", "flatten_as_list",
    "draw_computational_graph", "draw_dependency_graph", "draw_groups",
    "TORCH_CONV", "TORCH_LINEAR", "TORCH_BATCHNORM", "TORCH_PRELU",
]
