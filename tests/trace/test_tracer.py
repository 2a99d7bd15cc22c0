"""Tracing: multi-input / multi-output models, no_grad and the meta device."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import structprune as tp
from structprune.trace.tracer import trace_model


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.image = nn.Conv2d(3, 6, 3, padding=1)
        self.meta = nn.Linear(5, 6)
        self.head = nn.Linear(6, 4)
        self.aux = nn.Linear(6, 2)

    def forward(self, image, extra, scale=1.0):
        y = F.adaptive_avg_pool2d(self.image(image), 1).flatten(1) + self.meta(extra)
        return {"logits": self.head(y * scale), "aux": (self.aux(y), y.sum())}


def _inputs():
    return torch.randn(2, 3, 4, 4), torch.randn(2, 5)


def _check_coupled(model, graph, inputs, **kw):
    group = graph.get_pruning_group(model.image, tp.prune_conv_out_channels, idxs=[0, 3])
    names = {(t.name, t.dim) for t, i in group.plan() if t.is_layer and i}
    assert names == {("image", "out"), ("meta", "out"), ("head", "in"), ("aux", "in")}
    assert tp.verify_group(model, group, inputs, **kw) < 1e-5
    assert model.meta.out_features == model.head.in_features == 4


def test_tuple_inputs_and_dict_outputs():
    model = TwoInputs()
    inputs = _inputs()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=inputs)
    assert len(graph.trace.inputs) == 2 and len(graph.trace.outputs) == 3
    _check_coupled(model, graph, inputs)


def test_dict_inputs():
    model = TwoInputs()
    image, extra = _inputs()
    inputs = {"image": image, "extra": extra, "scale": 0.5}
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=inputs)
    _check_coupled(model, graph, inputs)


def test_forward_fn_and_output_transform():
    model = TwoInputs()
    inputs = list(_inputs())
    seen = []

    def forward_fn(m, batch):
        seen.append(len(batch))
        return m(batch[0], extra=batch[1])

    graph = tp.DependencyGraph().build_dependency(model, example_inputs=inputs, forward_fn=forward_fn,
                                                  output_transform=lambda out: out["logits"])
    assert seen == [2] and len(graph.trace.outputs) == 1
    # only the logits are the interface now: aux's output features may be pruned
    group = graph.get_pruning_group(model.aux, tp.prune_linear_out_channels, idxs=[1])
    assert {t.name for t, i in group.plan() if i} == {"aux"}
    _check_coupled(model, graph, inputs, forward_fn=forward_fn)


def test_model_outputs_are_pinned():
    model = TwoInputs()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=_inputs())
    reasons = graph.pin_reasons()
    assert "model output" in reasons["head.out"] and "model output" in reasons["aux.out"]
    assert "model input" in reasons["image.in"] and "model input" in reasons["meta.in"]


def test_trace_under_no_grad_records_the_same_ops():
    model = TwoInputs()
    inputs = _inputs()
    is_leaf = lambda m: isinstance(m, (nn.Conv2d, nn.Linear))  # noqa: E731
    with_grad = trace_model(model, inputs, is_leaf)
    with torch.no_grad():
        without = trace_model(model, inputs, is_leaf)
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=inputs)
    assert [n.op for n in with_grad.nodes] == [n.op for n in without.nodes]
    _check_coupled(model, graph, inputs)


def test_trace_does_not_change_the_model():
    model = TwoInputs()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    tp.DependencyGraph().build_dependency(model, example_inputs=_inputs())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert hooks == sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16 * 2 * 2, 10)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)) + y)
        return self.fc(F.adaptive_avg_pool2d(y, 2).flatten(1))


def test_trace_in_training_mode_leaves_batch_norm_statistics_alone():
    model = Net().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(2, 3, 8, 8) * 5 + 3)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_meta_device_graph_groups_and_pruning():
    with torch.device("meta"):
        model = Net()
    x = torch.randn(1, 3, 8, 8, device="meta")
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    groups = list(graph.get_all_groups())
    assert [(g.root.name, len(g.units)) for g in groups] == [("conv1", 16)]
    group = graph.get_pruning_group(model.conv1, tp.prune_conv_out_channels, idxs=[0, 5, 9])
    assert graph.check_pruning_group(group)
    group.prune()
    assert model.conv1.weight.shape == (13, 3, 3, 3) and model.conv2.weight.shape == (13, 13, 3, 3)
    assert model.bn2.running_mean.shape == (13,) and model.fc.weight.shape == (10, 13 * 4)
    assert model.conv1.weight.is_meta and model(x).shape == (1, 10)


def test_meta_graph_matches_cpu_graph():
    torch.manual_seed(0)
    cpu = Net()
    with torch.device("meta"):
        meta = Net()
    g_cpu = tp.DependencyGraph().build_dependency(cpu, example_inputs=torch.randn(1, 3, 8, 8))
    g_meta = tp.DependencyGraph().build_dependency(meta, example_inputs=torch.randn(1, 3, 8, 8, device="meta"))
    plan = lambda g, m: [(t.name, t.dim, i) for t, i in g.get_pruning_group(  # noqa: E731
        m.conv2, tp.prune_conv_out_channels, idxs=[3]).plan()]
    assert plan(g_cpu, cpu) == plan(g_meta, meta)


class Twice(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        return grad * 2


class WithFunction(nn.Module):
    def __init__(self, checkpointed=False):
        super().__init__()
        self.checkpointed = checkpointed
        self.conv = nn.Conv2d(3, 6, 1)
        self.inner = nn.Conv2d(6, 6, 1)
        self.head = nn.Conv2d(6, 2, 1)

    def forward(self, x):
        y = self.conv(x)
        if self.checkpointed:
            from torch.utils.checkpoint import checkpoint
            y = checkpoint(self.inner, y, use_reentrant=True)
        else:
            y = Twice.apply(y)
        return self.head(y)


def test_custom_autograd_function_is_one_op_without_rule():
    original = torch.autograd.Function.__dict__["apply"]
    model = WithFunction()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, 3, 2, 2))
    assert [n.op for n in graph.trace.nodes] == ["Conv2d", "Twice", "Conv2d"]
    assert [n.op for n in graph.unhandled] == ["Twice"]
    assert any("Twice" in r for r in graph.pin_reasons()["conv.out"])
    with pytest.raises(ValueError, match=r"conv.*pinned.*Twice"):
        graph.get_pruning_group(model.conv, tp.prune_conv_out_channels, idxs=[0])
    assert torch.autograd.Function.__dict__["apply"] is original  # restored after tracing


def test_custom_autograd_function_with_a_registered_rule():
    tp.register_op_rule(Twice)(lambda ctx, node: ctx.pass_through(node.inputs[0], node.outputs[0]))
    try:
        model = WithFunction()
        x = torch.randn(1, 3, 2, 2)
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
        group = graph.get_pruning_group(model.conv, tp.prune_conv_out_channels, idxs=[0, 4])
        assert tp.verify_group(model, group, x) < 1e-5 and model.head.in_channels == 4
    finally:
        from structprune.flow import registry
        registry._RULES.pop("Twice", None)


def test_reentrant_checkpoint_is_traced_through():
    model = WithFunction(checkpointed=True)
    x = torch.randn(1, 3, 2, 2)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    assert [n.module_name for n in graph.trace.nodes if n.is_module] == ["conv", "inner", "head"]
    group = graph.get_pruning_group(model.inner, tp.prune_conv_out_channels, idxs=[1])
    assert tp.verify_group(model, group, x) < 1e-5
