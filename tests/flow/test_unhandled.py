"""Ops without a rule pin the channels they touch, say so, and never modify the model."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import structprune as tp


class Block(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.conv = nn.Conv2d(3, 6, 1)
        self.head = nn.Conv2d(6, 2, 1)

    def forward(self, x):
        y = self.conv(x)
        if self.kind == "fft":
            y = torch.fft.fft(y, dim=1).real
        elif self.kind == "nonzero":
            y = y * (torch.nonzero(y > 0).shape[0] > 0)
        elif self.kind == "roll":
            y = torch.roll(y, 1, dims=1)
        return self.head(y)


class Net(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.block = Block(kind)
        self.other = nn.Conv2d(3, 4, 1)
        self.other_head = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        return self.block(x) + self.other_head(self.other(x))


@pytest.mark.parametrize("kind,op", [("fft", "fft_fft"), ("nonzero", "nonzero")])
def test_op_without_rule_is_reported_and_pins(kind, op):
    model = Net(kind)
    x = torch.randn(1, 3, 4, 4)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    assert any(n.op == op and n.scope == "block" for n in graph.unhandled)
    reasons = graph.pin_reasons()["block.conv.out"]
    assert any(op in r and "block" in r for r in reasons)
    roots = {g.root.name for g in graph.get_all_groups()}
    assert "block.conv" not in roots and "other" in roots
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=rf"block\.conv.*pinned.*{op}.*block"):
        graph.get_pruning_group(model.block.conv, tp.prune_conv_out_channels, idxs=[1])
    with pytest.raises(ValueError, match=r"block\.head.*pinned"):
        graph.get_pruning_group(model.block.head, tp.prune_conv_in_channels, idxs=[0])
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    group = graph.get_pruning_group(model.other, tp.prune_conv_out_channels, idxs=[0])
    assert tp.verify_group(model, group, x) < 1e-5


def test_roll_along_channels_pins_with_a_reason():
    model = Net("roll")
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, 3, 4, 4))
    assert any("roll" in r for r in graph.pin_reasons()["block.conv.out"])
    with pytest.raises(ValueError, match="roll"):
        graph.get_pruning_group(model.block.conv, tp.prune_conv_out_channels, idxs=[1])


def test_registering_a_rule_unpins():
    calls = []

    @tp.register_op_rule("fft_fft", replace=True)
    def fft_rule(ctx, node):  # pretend the fft runs over a spatial dim only
        calls.append(node.op)
        ctx.pass_through(node.inputs[0], node.outputs[0])

    @tp.register_op_rule("real", replace=True)
    def real_rule(ctx, node):
        ctx.pass_through(node.inputs[0], node.outputs[0])

    try:
        model = Net("fft")
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, 3, 4, 4))
        assert calls == ["fft_fft"] and not graph.unhandled
        assert "block.conv" in {g.root.name for g in graph.get_all_groups()}
    finally:
        from structprune.flow import registry
        registry._RULES.pop("fft_fft", None)
        registry._RULES.pop("real", None)
