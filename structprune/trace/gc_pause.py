"""Pause Python's cyclic garbage collector around analysis work.

Tracing and solving allocate many small objects (a record per traced call and tensor), and each
full collection walks every object the process holds (a model library, its weights' wrappers):
on a Llama, collections took a third of building a pruner.  Nothing cyclic is freed later than
at the end of the paused block.

Example::

    with paused_gc():
        graph = DependencyGraph().build_dependency(model, example_inputs)
"""

from __future__ import annotations

import functools
import gc
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

F = TypeVar("F", bound=Callable)


@contextmanager
def paused_gc() -> Iterator[None]:
    """No automatic collection inside the block (nests; restores the collector's state)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def gc_paused(function: F) -> F:
    """Decorator: run ``function`` under :func:`paused_gc`."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with paused_gc():
            return function(*args, **kwargs)
    return wrapper  # type: ignore[return-value]
