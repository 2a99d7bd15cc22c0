"""Utilities: MAC and parameter counting (Torch-Pruning's ``tp.utils.count_ops_and_params``)."""

from structprune.utils.mac_rules import macs_of, register_mac_rule
from structprune.utils.op_counter import count_ops_and_params, count_ops_per_module, count_params

__all__ = ["count_ops_and_params", "count_ops_per_module", "count_params", "macs_of", "register_mac_rule"]
