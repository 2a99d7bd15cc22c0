"""Torch-Pruning-style example scripts that run unchanged on Torch-Pruning and on structprune.

Each script takes ``--lib torch_pruning|structprune`` and imports it as ``tp``; the runner
(``python -m benchmarks.peer_examples``) runs them all on both and prints a side-by-side table.
"""
