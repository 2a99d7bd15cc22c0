"""The state that op rules and layer rules read and write while channel flow walks a trace."""

from __future__ import annotations

from typing import Hashable

from structprune.flow.atoms import Atoms, AtomTable
from structprune.trace.nodes import Node, Value


class FlowContext:
    """Atoms of every traced tensor dimension and of every prunable channel dimension.

    Rules call :meth:`dims` to read a value's per-dimension atoms, :meth:`set_dims` to give a
    node's outputs theirs, and the :class:`AtomTable` methods (``unify``, ``define``, ``pin``) to
    state how channels couple.  :meth:`channels` returns the persistent atoms of a layer's channel
    dimension, so a module called twice couples both calls.
    """

    def __init__(self) -> None:
        self.atoms = AtomTable()
        self.value_dims: dict[Value, list[Atoms]] = {}
        self.channel_atoms: dict[tuple[Hashable, str], Atoms] = {}
        self._called: set[int] = set()
        self.unhandled: list[Node] = []

    def first_call(self, owner: Hashable) -> bool:
        """True the first time a rule asks about ``owner`` (a module called several times)."""
        if id(owner) in self._called:
            return False
        self._called.add(id(owner))
        return True

    # values ------------------------------------------------------------------------------
    def dims(self, value: Value) -> list[Atoms]:
        """Atoms of each dimension of ``value`` (fresh ones for a tensor seen for the first time)."""
        dims = self.value_dims.get(value)
        if dims is None:
            dims = [self.atoms.fresh(s) for s in value.shape]
            self.value_dims[value] = dims
            if value.origin == "input":
                self.pin_value(value, "model input")
            elif value.origin == "constant":
                self.pin_value(value, "tensor made outside the traced calls")
        return dims

    def set_dims(self, value: Value, dims: list[Atoms]) -> None:
        sizes = tuple([d.numel() for d in dims])  # ints already
        if sizes != value.shape:
            raise ValueError(f"rule produced dims of sizes {sizes} for a tensor of shape {value.shape}")
        self.value_dims[value] = dims

    def pin_value(self, value: Value, reason: str) -> None:
        for d in self.dims(value):
            self.atoms.pin(d, reason)

    def fresh_pinned(self, size: int, reason: str) -> Atoms:
        atoms = self.atoms.fresh(size)
        self.atoms.pin(atoms, reason)
        return atoms

    def pin_node(self, node: Node, reason: str) -> None:
        """Pin every dim of the node's inputs and give its outputs pinned fresh atoms."""
        for v in node.inputs:
            self.pin_value(v, reason)
        for v in node.outputs:
            self.set_dims(v, [self.fresh_pinned(s, reason) for s in v.shape])

    # layer channels ----------------------------------------------------------------------
    def channels(self, owner: Hashable, dim: str, size: int) -> Atoms:
        """The atoms of channel dimension ``dim`` of ``owner`` (a module), made once."""
        key = (owner, dim)
        atoms = self.channel_atoms.get(key)
        if atoms is None:
            atoms = self.atoms.fresh(size)
            self.channel_atoms[key] = atoms
        return atoms

    def unify_dim(self, value: Value, dim: int, atoms: Atoms) -> None:
        self.atoms.unify(self.dims(value)[dim], atoms)

    def pass_through(self, src: Value, dst: Value) -> None:
        """``dst`` has the same atoms as ``src`` (same shape, element for element)."""
        self.set_dims(dst, list(self.dims(src)))


def pinned_reason(node: Node, what: str) -> str:
    return f"{what} at {node.describe()}"

