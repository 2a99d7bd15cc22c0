"""Group reductions and normalisers: documented values and ranges."""

from __future__ import annotations

import pytest
import torch

import structprune as tp
from structprune.importance import normalize_scores, reduce_scores

SCORES = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.5, 9.0], [7.0, 8.0, 2.0]])
PRESENT = torch.tensor([[True, True, False], [True, False, True], [True, True, True]])


@pytest.mark.parametrize("name,expected", [
    ("sum", [12.0, 10.0, 11.0]),
    ("mean", [4.0, 5.0, 5.5]),
    ("max", [7.0, 8.0, 9.0]),
    ("prod", [28.0, 16.0, 18.0]),
    ("first", [1.0, 2.0, 9.0]),
])
def test_reductions_use_only_present_dependencies(name, expected):
    torch.testing.assert_close(reduce_scores(SCORES, PRESENT, name), torch.tensor(expected))


def test_unknown_names_are_explained():
    with pytest.raises(ValueError, match="group_reduction"):
        reduce_scores(SCORES, PRESENT, "median")
    with pytest.raises(ValueError, match="normalizer"):
        normalize_scores(torch.ones(3), "softmax")


def test_normalizer_ranges():
    torch.manual_seed(0)
    s = torch.rand(50) * 10 + 0.1
    assert normalize_scores(s, "max").max() == pytest.approx(1.0, abs=1e-6)
    assert normalize_scores(s, "sum").sum() == pytest.approx(1.0, abs=1e-5)
    assert normalize_scores(s, "mean").mean() == pytest.approx(1.0, abs=1e-5)
    mm = normalize_scores(s, "standardization")
    assert mm.min() == pytest.approx(0.0, abs=1e-6) and mm.max() == pytest.approx(1.0, abs=1e-6)
    z = normalize_scores(s, "gaussian")
    assert z.mean() == pytest.approx(0.0, abs=1e-5) and z.std() == pytest.approx(1.0, abs=1e-4)
    lamp = normalize_scores(s, "lamp")
    assert bool(((lamp > 0) & (lamp <= 1 + 1e-6)).all()) and lamp.max() == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(normalize_scores(s, None), s) and torch.equal(normalize_scores(s, "none"), s)
    for name in ("max", "sum", "mean", "standardization", "lamp"):  # order-preserving
        assert torch.equal(normalize_scores(s, name).argsort(), s.argsort())


def test_lamp_matches_its_definition():
    s = torch.tensor([3.0, 1.0, 2.0])
    # sorted ascending 1, 2, 3: 1/(1+2+3), 2/(2+3), 3/3
    torch.testing.assert_close(normalize_scores(s, "lamp"), torch.tensor([1.0, 1 / 6, 2 / 5]), atol=1e-6, rtol=1e-6)


def test_custom_normalizer_and_reduction_register_by_name():
    tp.importance.register_normalizer("negate-test")(lambda s: -s)
    tp.importance.register_reduction("min-test")(
        lambda scores, present: scores.masked_fill(~present, float("inf")).min(0).values)
    assert torch.equal(normalize_scores(torch.tensor([1.0, 2.0]), "negate-test"), torch.tensor([-1.0, -2.0]))
    torch.testing.assert_close(reduce_scores(SCORES, PRESENT, "min-test"), torch.tensor([1.0, 2.0, 2.0]))
