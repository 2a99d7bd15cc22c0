"""Every Hugging Face family of the prunability suite pruned to a target (``speedup`` and
``target_params``) still saves with ``save_pretrained`` and reloads with the same outputs."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

import structprune as tp  # noqa: E402
from benchmarks.suites import cases  # noqa: E402
from structprune.adapters import save_pretrained_pruned  # noqa: E402

CASES = {case.name: case for case in cases("hf")}


def logits(model, inputs):
    with torch.no_grad():
        out = model(**inputs) if isinstance(inputs, dict) else model(inputs)
    return out.logits if hasattr(out, "logits") else out[0]


@pytest.mark.slow
@pytest.mark.parametrize("goal", ["speedup", "target_params"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_target_pruned_family_round_trips(name, goal, tmp_path):
    case = CASES[name]
    torch.manual_seed(0)
    model, inputs = case.build()
    model.eval()
    before = sum(p.numel() for p in model.parameters())
    options = {"speedup": 2.0} if goal == "speedup" else {"target_params": 0.5 * before}
    tp.pruner.MagnitudePruner(model, inputs, ignored_layers=case.ignored(model), forward_fn=case.forward_fn,
                              **options).step()
    assert sum(p.numel() for p in model.parameters()) < before
    save_pretrained_pruned(model, tmp_path)
    reloaded = type(model).from_pretrained(tmp_path).eval()
    if isinstance(inputs, dict) and case.forward_fn is None:
        assert torch.allclose(logits(model, inputs), logits(reloaded, inputs), atol=1e-5)
