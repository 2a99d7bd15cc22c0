"""Integers that remember where they came from while a model is traced.

During tracing every ``int`` attribute of every module (``self.num_heads``, ``self.head_dim``)
is replaced by a :class:`TracedInt` with the same value.  An op called with one of them tells us
exactly which attribute sized which output dim; arithmetic on them (``C // self.num_heads``)
gives a *derived* TracedInt that names its sources and whether only products were taken.

The ints inside plain list/tuple attributes (``self.size = [56, 56]``, a schedule of stride
tuples) are traced too, as non-adaptive values: nothing updates a container after pruning, so
they count as sizes fixed in code, but one can tell they came from the configuration and not
from a tensor's shape.

Sizes read from tensors (``x.shape``, ``x.size(d)``) are TracedInts as well, with no attribute
``sources`` but the traced dims they were read from in ``reads``; ``exact`` says the number is
one such read, unchanged.  For every attribute rule they count as plain sizes.  A number read
from a shape that leaves the integers (``C / 4`` gives a float, ``int(...)`` a plain int)
loses its provenance: the tracer is told (:func:`escape_log`), so a plain int seen later may
still have been computed from a shape.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch.nn as nn

from structprune.trace.structure import leaf_type

_EMPTY: frozenset = frozenset()


class _EscapeLog:
    """Where traced shape numbers lost their provenance: ``sink`` is the tracer's callback,
    ``paused`` counts the tracer's own calls (torch internals converting sizes do not count)."""

    sink: Callable[[], None] | None = None
    paused: int = 0


def _escaped(*values) -> None:
    if _EscapeLog.sink is not None and not _EscapeLog.paused and any(
            isinstance(v, TracedInt) and v.reads for v in values):
        _EscapeLog.sink()


class TracedInt(int):
    """An ``int`` that knows the module attributes (``sources``) and tensor dims (``reads``,
    ``(Value, axis)`` pairs) it was made from."""

    sources: frozenset
    derived: bool
    attributes_only: bool = True  # class defaults: what every instance sets these to unless told
    adaptive: bool
    reads: frozenset = _EMPTY
    exact: bool = False

    def __new__(cls, value: int, sources, derived: bool = False, attributes_only: bool = True,
                adaptive: bool = True, reads=_EMPTY, exact: bool = False):
        obj = int.__new__(cls, value)
        obj.sources = sources if type(sources) is frozenset else frozenset(sources)
        obj.derived, obj.attributes_only, obj.adaptive = derived, attributes_only, adaptive
        obj.reads = reads if type(reads) is frozenset else frozenset(reads)
        obj.exact = exact
        return obj

    @classmethod
    def read(cls, size: int, value, axis: int) -> "TracedInt":
        """``size`` read from dim ``axis`` of traced ``value`` (a :class:`~structprune.trace.nodes.Value`)."""
        return cls(size, _EMPTY, derived=True, attributes_only=False, adaptive=True,
                   reads={(value, axis)}, exact=True)

    @property
    def from_attributes(self) -> bool:
        """Made with some module attribute (a shape read alone behaves as a plain size)."""
        return bool(self.sources)

    def _combine(self, other, result: int, product: bool):
        """``attributes_only``: every operand was an attribute (``num_heads // num_kv_heads``), so
        the result follows them when pruning updates them.  ``adaptive``: a product of such
        values and plain sizes (``b * self.num_heads``), which scales with the dims it sizes.
        Anything else (``C // self.num_heads`` with ``C`` read from a tensor), or anything made
        from a non-adaptive value (an int of a list attribute), is not adaptive.  Shape reads
        count as plain sizes here; their dims are carried along in ``reads``."""
        other_reads = other.reads if isinstance(other, TracedInt) else _EMPTY
        reads = self.reads | other_reads
        neutral = other == (1 if product else 0)  # math.prod's 1, sum's 0: no new operand
        exact = self.exact and neutral and not (isinstance(other, TracedInt) and other.sources)
        mine = self if self.sources else None
        theirs = other if isinstance(other, TracedInt) and other.sources else None
        if mine is None and theirs is None:
            if not reads:
                return result
            return TracedInt(result, _EMPTY, True, False, True, reads, exact)
        if mine is None:  # ``C * self.num_heads`` computed by C's method: the attribute leads
            mine, other, neutral = theirs, self, int(self) == (1 if product else 0)
            theirs = None
        if theirs is None and neutral:
            return TracedInt(result, mine.sources, True, mine.attributes_only, mine.adaptive, reads)
        sources = mine.sources | (theirs.sources if theirs is not None else _EMPTY)
        pure = mine.attributes_only and theirs is not None and theirs.attributes_only
        adaptive = mine.adaptive and (theirs.adaptive if theirs is not None else True)
        if not product:
            adaptive = adaptive and pure
        return TracedInt(result, sources, derived=True, attributes_only=pure, adaptive=adaptive, reads=reads)

    def __mul__(self, other):
        result = int.__mul__(self, other)
        return result if result is NotImplemented else self._combine(other, result, True)

    __rmul__ = __mul__

    def __neg__(self):
        if not self.sources:
            return self._read_only(-int(self))
        return TracedInt(-int(self), self.sources, derived=True, attributes_only=self.attributes_only,
                         adaptive=self.adaptive, reads=self.reads)

    def _read_only(self, result, *others):
        """The result of an op attributes never went through (``abs``, ``&``, ``round``): traced
        when only shape reads made it; provenance is lost (and logged) when an attribute did."""
        if not isinstance(result, int) or isinstance(result, bool):
            _escaped(self, *others)
            return result
        if self.sources or any(isinstance(o, TracedInt) and o.sources for o in others):
            _escaped(self, *others)
            return int(result)
        reads = self.reads.union(*(o.reads for o in others if isinstance(o, TracedInt)))
        return TracedInt(result, _EMPTY, True, False, True, reads) if reads else int(result)

    def __int__(self):
        _escaped(self)
        return int.__int__(self)

    def __float__(self):
        _escaped(self)
        return int.__float__(self)

    def __divmod__(self, other):
        result = int.__divmod__(self, other)
        if result is NotImplemented:
            return result
        return tuple(self._read_only(r, other) for r in result)

    def __rdivmod__(self, other):
        result = int.__rdivmod__(self, other)
        if result is NotImplemented:
            return result
        return tuple(self._read_only(r, other) for r in result)

    def __round__(self, ndigits=None):
        return self._read_only(int.__round__(self, ndigits))

    def __reduce__(self):  # pickles (and deep-copies) as a plain int
        return (int, (int(self),))


def _arithmetic(name: str):
    base = getattr(int, name)

    def method(self, other):
        result = base(self, other)
        if result is NotImplemented:
            return result
        if not isinstance(result, int):  # ``C / 4``, ``C ** -0.5``: a float, provenance lost
            _escaped(self, other)
            return result
        return self._combine(other, result, False)

    return method


def _unary(name: str):
    base = getattr(int, name)

    def method(self):
        return self._read_only(base(self))

    return method


def _other_ops(name: str):
    base = getattr(int, name)

    def method(self, other):
        result = base(self, other)
        return result if result is NotImplemented else self._read_only(result, other)

    return method


for _name in ("__add__", "__radd__", "__sub__", "__rsub__", "__floordiv__", "__rfloordiv__",
              "__mod__", "__rmod__", "__pow__", "__lshift__", "__rshift__"):
    setattr(TracedInt, _name, _arithmetic(_name))
for _name in ("__abs__", "__pos__", "__invert__", "__floor__", "__ceil__", "__trunc__"):
    setattr(TracedInt, _name, _unary(_name))
for _name in ("__and__", "__rand__", "__or__", "__ror__", "__xor__", "__rxor__", "__truediv__", "__rtruediv__"):
    setattr(TracedInt, _name, _other_ops(_name))
leaf_type(TracedInt)  # no container: the tracer's walks over call arguments skip it


def _int_container(value) -> bool:
    """A plain list/tuple of ints (nested lists/tuples of ints allowed), not empty."""
    if type(value) not in (list, tuple) or not value:
        return False
    return all(type(v) is int or _int_container(v) for v in value)


def _traced_container(value, source: tuple | frozenset):
    """A copy of an int container whose ints are fixed (non-adaptive) TracedInts from ``source``."""
    sources = source if type(source) is frozenset else frozenset((source,))
    if type(value) is int:
        return _fixed(value, sources)
    return type(value)([_fixed(v, sources) if type(v) is int else _traced_container(v, sources) for v in value])


def _traced_flat(value: tuple | list, source: tuple):
    """:func:`_traced_container` of a non-empty flat list/tuple of ints, else ``None``; equal ints
    share one TracedInt (as small plain ints are one object: ``(1, 1)`` holds the same 1 twice)."""
    if not value or not all(type(v) is int for v in value):
        return None
    sources = frozenset((source,))
    made = {v: _fixed(v, sources) for v in set(value)}
    return type(value)([made[v] for v in value])


def _fixed(value: int, sources: frozenset) -> TracedInt:
    """``TracedInt(value, sources, derived=True, adaptive=False)``, made directly (hundreds per model)."""
    obj = int.__new__(TracedInt, value)
    obj.sources, obj.derived, obj.adaptive = sources, True, False  # attributes_only, reads, exact: class defaults
    return obj


@contextmanager
def traced_int_attributes(model: nn.Module, plain_ints_after: bool = True,
                          modules: list[nn.Module] | None = None) -> Iterator[None]:
    """Swap every plain ``int`` attribute of ``model``'s modules for a TracedInt (and the ints of
    every plain list/tuple-of-ints attribute for fixed ones, and the int fields of the configs
    modules hold as ``self.config``: Phi-3 slices its fused q/k/v projection at
    ``self.config.num_attention_heads * self.head_dim``), then restore the originals; with
    ``plain_ints_after`` also make plain every TracedInt the forward stored on a module (leave it
    off when every module's attributes are put back anyway, as :func:`meta_weights` does);
    ``modules``: ``list(model.modules())`` when the caller has it."""
    modules = list(model.modules()) if modules is None else modules
    swapped: list[tuple[object, str, object, object]] = []
    for module in modules:
        for name, value in [(n, v) for n, v in module.__dict__.items() if type(v) in _SWAPPED]:
            kind = type(value)
            if kind is int:  # TracedInt(value, {(module, name)}), made directly (hundreds per model)
                traced = int.__new__(TracedInt, value)
                traced.sources, traced.derived, traced.adaptive = frozenset(((module, name),)), False, True
            elif kind is tuple or kind is list:
                traced = _traced_flat(value, (module, name))  # the usual container: flat ints (a stride)
                if traced is None:
                    if not _int_container(value):
                        continue
                    traced = _traced_container(value, (module, name))
            else:
                continue
            swapped.append((module, name, value, traced))
            module.__dict__[name] = traced
    for config in _configs(modules):
        ref = ConfigRef(config)
        for name, value in list(vars(config).items()):
            if type(value) is int:  # derived: a config field is no module's own attribute
                traced = TracedInt(value, {(ref, name)}, derived=True)
                swapped.append((config, name, value, traced))
                config.__dict__[name] = traced
    try:
        yield
    finally:
        for module, name, value, traced in swapped:
            current = module.__dict__.get(name)
            if current is traced or isinstance(current, TracedInt):
                module.__dict__[name] = value
        if plain_ints_after:
            _plain_module_ints(model)


_SWAPPED = frozenset({int, tuple, list})  # the attribute types swapped above (exact types)


def _configs(modules: list[nn.Module]) -> list:
    """The configuration objects modules hold as ``self.config`` (a Hugging Face model's config,
    shared by its layers), each once: their int fields are traced like module attributes."""
    found: dict[int, object] = {}
    for module in modules:
        config = module.__dict__.get("config")
        if config is not None and not isinstance(config, nn.Module) and hasattr(config, "__dict__"):
            found.setdefault(id(config), config)
    return list(found.values())


class ConfigRef:
    """The owner in a TracedInt source ``(owner, name)`` for a config field: hashable by identity
    (configs compare by value and do not hash); attribute reads go to the config."""

    def __init__(self, config) -> None:
        self.config = config

    def __getattr__(self, name: str):
        return getattr(self.__dict__["config"], name)


def config_field(owner) -> bool:
    """Whether a TracedInt source ``(owner, name)`` is a field of a model's config (not a module attribute)."""
    return isinstance(owner, ConfigRef)


def _plain_module_ints(model: nn.Module) -> None:
    """Sizes the forward stored on modules (``self.cached_len = x.shape[1]``) become plain ints."""
    for module in model.modules():
        for name, value in list(vars(module).items()):
            if isinstance(value, TracedInt):
                module.__dict__[name] = int.__int__(value)


@contextmanager
def escape_log(sink: Callable[[], None]) -> Iterator[None]:
    """Call ``sink()`` whenever a number computed from a traced shape leaves the traced ints
    (``int(C / 4)``) outside the tracer's own calls (see :func:`paused_escapes`)."""
    previous, _EscapeLog.sink = _EscapeLog.sink, sink
    try:
        yield
    finally:
        _EscapeLog.sink = previous


class _PausedEscapes:
    """Context manager behind :func:`paused_escapes` (a class: it runs for every traced call,
    and a generator-based one costs several times more)."""

    __slots__ = ()

    def __enter__(self) -> None:
        _EscapeLog.paused += 1

    def __exit__(self, *exc) -> None:
        _EscapeLog.paused -= 1


_PAUSED = _PausedEscapes()


def paused_escapes() -> _PausedEscapes:
    """Torch's own code converting sizes (while the tracer runs an op) is not the model's."""
    return _PAUSED
