"""The records a trace is made of: values (tensors seen during the forward) and nodes (calls)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch.nn as nn


@dataclass(eq=False)
class Value:
    """One tensor as it existed at one point of the forward (an in-place op makes a new Value).

    ``origin`` is ``"input"``, ``"op"`` (made by a recorded node), ``"param"`` / ``"buffer"``
    (a model tensor used directly by an op; ``name`` is its qualified name) or ``"constant"``
    (a tensor whose making was not seen).
    """

    index: int
    shape: tuple[int, ...]
    origin: str
    producer: "Node | None" = None
    name: str = ""

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        where = self.name or (self.producer.describe() if self.producer else self.origin)
        return f"Value#{self.index}{list(self.shape)}<{where}>"


@dataclass(eq=False)
class Node:
    """One recorded call: a leaf module (``module`` set) or a torch function / tensor method.

    ``args`` / ``kwargs`` keep the call's structure with every tensor replaced by its
    :class:`Value`; ``inputs`` lists those values in order, ``outputs`` the tensors it returned.
    ``scope`` is the qualified name of the innermost module that was running.
    """

    index: int
    op: str
    func: Callable | None
    args: tuple
    kwargs: dict[str, Any]
    inputs: list[Value]
    outputs: list[Value]
    scope: str
    module: nn.Module | None = None
    module_name: str = ""
    users: list["Node"] = field(default_factory=list)

    @property
    def is_module(self) -> bool:
        return self.module is not None

    def arg(self, position: int, name: str, default: Any = None) -> Any:
        """The call argument given at ``position`` or as keyword ``name`` (``default`` if absent)."""
        if name in self.kwargs:
            return self.kwargs[name]
        if position < len(self.args):
            return self.args[position]
        return default

    @property
    def name(self) -> str:
        """Torch-Pruning's node name: ``"layer1.0.conv1 (Conv2d)"`` or ``"add at layer1.0"``."""
        return self.describe()

    def details(self) -> str:
        """The node, the nodes it reads from and the nodes that read it (Torch-Pruning's ``Node.details``)."""
        producers = {v.producer.index: v.producer for v in self.inputs if v.producer is not None}
        lines = [f"<Node: ({self.name})>", "    IN:"]
        lines += [f"        {p!r}" for p in producers.values()] or ["        (model input or parameter)"]
        lines += ["    OUT:"] + ([f"        {u!r}" for u in self.users] or ["        (model output)"])
        return "\n".join(lines)

    def describe(self) -> str:
        if self.is_module:
            return f"{self.module_name or 'model'} ({type(self.module).__name__})"
        where = f" at {self.scope}" if self.scope else ""
        return f"{self.op}{where}"

    def __repr__(self) -> str:
        return f"Node#{self.index}<{self.describe()}>"


@dataclass(frozen=True)
class ShapeRead:
    """Code read the sizes of ``value``'s dims ``axes`` (``x.shape`` / ``x.size(d)``) before node ``position``."""

    position: int
    scope: str
    value: Value
    axes: tuple[int, ...]


@dataclass(frozen=True)
class ShapeEscape:
    """Before node ``position``, in ``scope``, a number computed from a traced shape became a plain
    int or a float (``int(C / 4)``, ``len(x)``): a plain int seen later may come from a shape."""

    position: int
    scope: str


@dataclass
class Trace:
    """Everything one forward pass showed: nodes in execution order and the model's interface."""

    model: nn.Module
    nodes: list[Node]
    inputs: list[Value]
    outputs: list[Value]
    values: list[Value]
    module_names: dict[nn.Module, str]
    shape_reads: list[ShapeRead] = field(default_factory=list)
    escapes: list[ShapeEscape] = field(default_factory=list)
