"""Torch-Pruning's ``tp.dependency`` names: the graph, its groups and their dependencies.

Example::

    from structprune.dependency import DependencyGraph, Group, Dependency
"""

from structprune.graph import DependencyGraph
from structprune.group import Dependency, Group
from structprune.trace.nodes import Node

__all__ = ["DependencyGraph", "Group", "Dependency", "Node"]
