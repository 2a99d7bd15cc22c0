"""Integer module attributes that remember where they came from while a model is traced.

During tracing every ``int`` attribute of every module (``self.num_heads``, ``self.head_dim``)
is replaced by a :class:`TracedInt` with the same value.  An op called with one of them tells us
exactly which attribute sized which output dim; arithmetic on them (``C // self.num_heads``)
gives a *derived* TracedInt that names its sources and whether only products were taken.

The ints inside plain list/tuple attributes (``self.size = [56, 56]``, a schedule of stride
tuples) are traced too, as non-adaptive values: nothing updates a container after pruning, so
they count as sizes fixed in code, but one can tell they came from the configuration and not
from a tensor's shape.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch.nn as nn


class TracedInt(int):
    """An ``int`` that knows the module attributes it was made from."""

    sources: frozenset
    derived: bool
    attributes_only: bool
    adaptive: bool

    def __new__(cls, value: int, sources, derived: bool = False, attributes_only: bool = True,
                adaptive: bool = True):
        obj = super().__new__(cls, value)
        obj.sources, obj.derived = frozenset(sources), derived
        obj.attributes_only, obj.adaptive = attributes_only, adaptive
        return obj

    def _combine(self, other, result: int, product: bool) -> "TracedInt":
        """``attributes_only``: every operand was an attribute (``num_heads // num_kv_heads``), so
        the result follows them when pruning updates them.  ``adaptive``: a product of such
        values and plain sizes (``b * self.num_heads``), which scales with the dims it sizes.
        Anything else (``C // self.num_heads`` with ``C`` read from a tensor), or anything made
        from a non-adaptive value (an int of a list attribute), is not adaptive."""
        traced = isinstance(other, TracedInt)
        if not traced and other == (1 if product else 0):  # math.prod's 1, sum's 0: no new operand
            return TracedInt(result, self.sources, True, self.attributes_only, self.adaptive)
        sources = self.sources | (other.sources if traced else frozenset())
        pure = self.attributes_only and traced and other.attributes_only
        adaptive = self.adaptive and (other.adaptive if traced else True)
        if not product:
            adaptive = adaptive and pure
        return TracedInt(result, sources, derived=True, attributes_only=pure, adaptive=adaptive)

    def __mul__(self, other):
        result = int.__mul__(self, other)
        return result if result is NotImplemented else self._combine(other, result, True)

    __rmul__ = __mul__

    def __neg__(self):
        return TracedInt(-int(self), self.sources, derived=True, attributes_only=self.attributes_only,
                         adaptive=self.adaptive)

    def __reduce__(self):  # pickles (and deep-copies) as a plain int
        return (int, (int(self),))


def _arithmetic(name: str):
    base = getattr(int, name)

    def method(self, other):
        result = base(self, other)
        if result is NotImplemented or not isinstance(result, int):
            return result
        return self._combine(other, result, False)

    return method


for _name in ("__add__", "__radd__", "__sub__", "__rsub__", "__floordiv__", "__rfloordiv__",
              "__mod__", "__rmod__", "__pow__", "__lshift__", "__rshift__"):
    setattr(TracedInt, _name, _arithmetic(_name))


def _int_container(value) -> bool:
    """A plain list/tuple of ints (nested lists/tuples of ints allowed), not empty."""
    if type(value) not in (list, tuple) or not value:
        return False
    return all(type(v) is int or _int_container(v) for v in value)


def _traced_container(value, source: tuple):
    """A copy of an int container whose ints are fixed (non-adaptive) TracedInts from ``source``."""
    if type(value) is int:
        return TracedInt(value, {source}, derived=True, adaptive=False)
    return type(value)(_traced_container(v, source) for v in value)


@contextmanager
def traced_int_attributes(model: nn.Module) -> Iterator[None]:
    """Swap every plain ``int`` attribute of ``model``'s modules for a TracedInt (and the ints of
    every plain list/tuple-of-ints attribute for fixed ones), then restore the originals."""
    swapped: list[tuple[nn.Module, str, object, object]] = []
    for module in model.modules():
        for name, value in list(vars(module).items()):
            if type(value) is int:
                traced = TracedInt(value, {(module, name)})
            elif _int_container(value):
                traced = _traced_container(value, (module, name))
            else:
                continue
            swapped.append((module, name, value, traced))
            module.__dict__[name] = traced
    try:
        yield
    finally:
        for module, name, value, traced in swapped:
            current = module.__dict__.get(name)
            if current is traced or isinstance(current, TracedInt):
                module.__dict__[name] = value
