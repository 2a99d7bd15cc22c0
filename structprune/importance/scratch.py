"""A slice's rows as float32 without a fresh full-size allocation per slice.

Scoring a bf16 (or fp16, or strided) weight converts it to a float32 matrix first.  For the
large matrices of an LLM a fresh allocation costs more than the conversion itself (the
allocator maps new pages for every one), so inside :func:`reused_float_buffer` the matrix is
written into one buffer kept for the whole block (a group's scoring, or a pruner's step).  The
matrix has the very strides ``rows().float()`` gives, so every reduction over it (and every
score) is bit-for-bit what it was.

Example::

    with reused_float_buffer():
        for s in group_slices(group):
            rows, owned = float_rows(s)      # owned: a copy the caller may change in place
            scores = (rows.square_() if owned else rows.square()).sum(1)
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from structprune.importance.slices import UnitSlice

_MIN_ELEMENTS = 1 << 16  # below this the allocator reuses its own blocks anyway
_buffer: list[torch.Tensor | None] | None = None  # [buffer] while reused_float_buffer() is active


@contextlib.contextmanager
def reused_float_buffer() -> Iterator[None]:
    """Let :func:`float_rows` reuse one float32 buffer until the block ends (nested blocks
    share the outer one; the buffer is freed when the outermost block ends)."""
    global _buffer
    if _buffer is not None:
        yield
        return
    _buffer = [None]
    try:
        yield
    finally:
        _buffer = None


def float_rows(s: UnitSlice) -> tuple[torch.Tensor, bool]:
    """``(s.rows().float(), owned)``: ``owned`` when the matrix is not a view of the parameter,
    so the caller may change it in place (it is overwritten by the next call inside
    :func:`reused_float_buffer`)."""
    rows = s.rows()
    if rows.dtype == torch.float32:  # a view of the parameter, or the copy a reshape made
        return rows, rows.untyped_storage().data_ptr() != s.tensor.untyped_storage().data_ptr()
    into = _reused(rows)
    return (rows.float() if into is None else into.copy_(rows)), True


def _reused(rows: torch.Tensor) -> torch.Tensor | None:
    """A view of the reused buffer with the size and strides ``rows.float()`` would have, or
    ``None`` (no block active, a small matrix, or a layout that is not dense)."""
    if _buffer is None or rows.numel() < _MIN_ELEMENTS:
        return None
    stride = rows.to(device="meta", dtype=torch.float32).stride()  # the layout .float() makes
    span = 1 + sum((size - 1) * step for size, step in zip(rows.shape, stride))
    if span != rows.numel() or any(step < 0 for step in stride):
        return None
    buffer = _buffer[0]
    if buffer is None or buffer.numel() < span or buffer.device != rows.device:
        buffer = _buffer[0] = torch.empty(span, dtype=torch.float32, device=rows.device)
    return buffer.as_strided(rows.shape, stride)
