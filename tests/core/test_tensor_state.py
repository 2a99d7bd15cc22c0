"""``TensorState``: the cache key of values derived from tensors that change in place."""

from __future__ import annotations

import torch

from structprune.targets import TensorState


def test_state_holds_until_a_tensor_changes_in_place_or_is_replaced():
    dead, pinned = torch.zeros(4, dtype=torch.bool), torch.zeros(4, dtype=torch.bool)
    state = TensorState(dead, pinned)
    assert state.matches(dead, pinned)
    dead[1] = True  # in place: the version moves
    assert not state.matches(dead, pinned)
    state = TensorState(dead, pinned)
    assert state.matches(dead, pinned) and not state.matches(dead.clone(), pinned) and not state.matches(dead)


def test_inference_tensors_never_match():
    with torch.inference_mode():
        dead = torch.zeros(4, dtype=torch.bool)
    assert not TensorState(dead).matches(dead)
