"""Target searches on meta stand-ins of the weights: the same pruned model as pruning the real
weights round by round, and a step that fails part way leaves the model as it was."""

from __future__ import annotations

import pytest
import torch

import structprune as tp
from structprune.pruner import stand_ins
from structprune.pruner.target import TargetSearch
from tiny_models import ConvNet


def _convnet():
    torch.manual_seed(0)
    model, x = ConvNet(width=32).eval(), torch.randn(1, 3, 16, 16)
    model(x).pow(2).mean().backward()  # gradients on the parameters: pruning keeps them, sliced
    return model, x


def _pruner(model, x, **kw):
    return tp.pruner.MagnitudePruner(model, x, ignored_layers=[model.fc], **kw)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].shape == b[k].shape and torch.equal(a[k], b[k]), k


def _real_rounds(model, x, **kw):
    """The step with the caller pruning each group (interactive: the real weights, round by round)."""
    pruner = _pruner(model, x, **kw)
    for group in pruner.step(interactive=True):
        group.prune()
    return pruner


@pytest.mark.parametrize("kw", [{"speedup": 2.0}, {"target_params": 20_000}, {"speedup": 2.0, "global_pruning": True}])
def test_stand_in_step_prunes_as_the_real_rounds_do(monkeypatch, kw):
    monkeypatch.setattr(stand_ins, "SMALLEST", 0)  # every tensor stands in
    real, x = _convnet()
    virtual, _ = _convnet()  # not a deepcopy: that drops the gradients
    followed = []
    monkeypatch.setattr(stand_ins.StandIns, "finish", _spy(stand_ins.StandIns.finish, followed))
    pruner = _pruner(virtual, x, **kw)
    pruner.step()
    reference = _real_rounds(real, x, **kw)
    assert followed, "the step did not run on stand-ins"
    _same(_state(virtual), _state(real))
    for (name, a), b in zip(virtual.named_parameters(), real.parameters()):
        assert not a.is_meta and a.requires_grad == b.requires_grad, name
        assert torch.equal(a.grad, b.grad), name
    assert pruner.DG.pruning_history() == reference.DG.pruning_history()
    assert virtual.fc.weight.shape[1] < 64 and virtual(x).shape == (1, 10)


def test_unpruned_tensors_keep_their_identity(monkeypatch):
    monkeypatch.setattr(stand_ins, "SMALLEST", 0)
    model, x = _convnet()
    bias, weight = model.fc.bias, model.fc.weight
    _pruner(model, x, speedup=2.0).step()
    assert model.fc.bias is bias and not bias.is_meta  # the classifier's outputs are never pruned
    assert model.fc.weight is not weight and model.fc.weight.shape[1] < weight.shape[1]


def _spy(method, calls):
    def wrapper(self, *args, **kwargs):
        calls.append(self)
        return method(self, *args, **kwargs)
    return wrapper


def _failing_measure(after: int):
    """A measure that fails on call ``after`` (once a round was pruned)."""
    real, calls = TargetSearch.measure, []

    def measure(self):
        calls.append(1)
        if len(calls) >= after:
            raise RuntimeError("counter broke")
        return real(self)
    return measure


@pytest.mark.parametrize("interactive", [False, True])  # on stand-ins, or on the real weights
def test_a_search_failing_part_way_leaves_the_model_whole(monkeypatch, interactive):
    monkeypatch.setattr(stand_ins, "SMALLEST", 0)
    model, x = _convnet()
    before = _state(model)
    pruner = _pruner(model, x, speedup=2.0)
    monkeypatch.setattr(TargetSearch, "measure", _failing_measure(after=3))
    with pytest.raises(RuntimeError, match="left as it was before the step") as error:
        if interactive:
            for group in pruner.step(interactive=True):
                group.prune()
        else:
            pruner.step()
    assert "counter broke" in str(error.value)
    _same(_state(model), before)
    assert not pruner.DG.dead.any() and pruner.DG.pruning_history() == []
    assert all(not p.is_meta for p in model.parameters()) and model(x).shape == (1, 10)


def test_stand_ins_that_cannot_be_followed_fall_back_to_the_real_weights(monkeypatch):
    monkeypatch.setattr(stand_ins, "SMALLEST", 0)
    real, x = _convnet()
    model, _ = _convnet()

    def untraceable(self):
        raise stand_ins.StandInError("a custom pruner sliced a stand-in")
    monkeypatch.setattr(stand_ins.StandIns, "finish", untraceable)
    _pruner(model, x, speedup=2.0).step()
    _real_rounds(real, x, speedup=2.0)
    _same(_state(model), _state(real))


def test_a_model_on_meta_is_searched_as_it_is():
    with torch.device("meta"):
        model = ConvNet(width=32)
    assert not stand_ins.can_stand_in(model, list(model.modules()))
    pruner = tp.pruner.MagnitudePruner(model, torch.randn(1, 3, 16, 16, device="meta"), speedup=2.0,
                                       importance=tp.importance.RandomImportance(), ignored_layers=[model.fc])
    pruner.step()
    assert model.conv2.out_channels < 64 and model.conv2.weight.is_meta


@pytest.mark.parametrize("smallest", [0, 1 << 40])
def test_a_step_whose_pruning_fails_leaves_the_model_whole(monkeypatch, smallest):
    monkeypatch.setattr(stand_ins, "SMALLEST", smallest)
    model, x = _convnet()
    before = _state(model)
    pruner = _pruner(model, x, speedup=2.0)
    real_prune, calls = tp.pruner.MagnitudePruner._prune, []

    def failing(self, group):
        calls.append(1)
        if len(calls) == 3:
            raise TypeError("a custom pruner broke")
        real_prune(self, group)
    monkeypatch.setattr(tp.pruner.MagnitudePruner, "_prune", failing)
    with pytest.raises(TypeError, match="custom pruner broke"):
        pruner.step()
    _same(_state(model), before)
    assert not pruner.DG.dead.any() and all(not p.is_meta for p in model.parameters())
