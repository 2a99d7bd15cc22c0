"""Integer attributes that size reshapes follow pruning; sizes fixed in code pin their units."""

from __future__ import annotations

import torch
import torch.nn as nn

import structprune as tp


class GQAttention(nn.Module):
    """Grouped-query attention whose head_dim equals its kv head count and its repeat factor."""

    def __init__(self, dim=8, heads=4, kv_heads=2):
        super().__init__()
        self.head_dim, self.kv_heads, self.repeat = dim // heads, kv_heads, heads // kv_heads
        self.q = nn.Linear(dim, heads * self.head_dim, bias=False)
        self.k = nn.Linear(dim, kv_heads * self.head_dim, bias=False)
        self.v = nn.Linear(dim, kv_heads * self.head_dim, bias=False)
        self.o = nn.Linear(heads * self.head_dim, dim, bias=False)

    def forward(self, x):
        b, n, _ = x.shape
        q = self.q(x).view(b, n, -1, self.head_dim).transpose(1, 2)
        k, v = (t(x).view(b, n, -1, self.head_dim).transpose(1, 2) for t in (self.k, self.v))
        k, v = (t[:, :, None].expand(b, self.kv_heads, self.repeat, n, self.head_dim)
                .reshape(b, self.kv_heads * self.repeat, n, self.head_dim) for t in (k, v))
        out = torch.softmax(q @ k.transpose(-2, -1), dim=-1) @ v
        return self.o(out.transpose(1, 2).reshape(b, n, -1))


def _group_with(graph, names, units):
    for g in graph.get_all_groups():
        layers = {t.name for t in g.member_targets() if t.is_layer}
        if layers == names and len(g.units) == units:
            return g
    raise AssertionError(f"no group of {units} units over {names}")


def test_coincident_sizes_do_not_pin_kv_heads():
    torch.manual_seed(0)
    model = GQAttention().eval()
    x = torch.randn(2, 3, 8)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    # two 2-unit groups span q/k/v/o: the kv heads, and the head dims (tied across q/k and v by
    # ``self.head_dim``); the kv heads are the outer factor of k's channels
    outer = set(graph.target_of(model.k).classes[:, 0].tolist())
    kv_heads = next(g for g in graph.get_all_groups() if len(g.units) == 2 and set(g.units) & outer)
    assert tp.verify_group(model, tp.Group(graph, kv_heads.root, kv_heads.units, [1]), x) < 1e-5
    assert model.kv_heads == 1 and model.k.out_features == 2 and model.q.out_features == 4


def test_size_read_from_other_units_pins_heads():
    class MergesWithInputWidth(GQAttention):
        def forward(self, x):
            b, n, c = x.shape
            q = self.q(x).view(b, n, -1, self.head_dim).transpose(1, 2)
            return self.o(q.transpose(1, 2).reshape(b, n, c))  # c is the input's width, not heads*head_dim

    model = MergesWithInputWidth(dim=8, heads=4, kv_heads=4).eval()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(2, 3, 8))
    reasons = graph.pin_reasons()
    assert any("read from a dim of other units" in r for r in reasons["q.out"])
    for group in graph.get_all_groups():
        assert not any(t.name == "q" and t.dim == "out" for t in group.member_targets())


def test_expand_adding_leading_dims_builds():
    class Broadcasts(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.out = nn.Linear(4, 6), nn.Linear(6, 2)

        def forward(self, x):
            return self.out(self.lin(x).expand(2, -1, -1)).sum(0) + self.lin(x).expand(2, 3, 6).sum()

    model = Broadcasts().eval()
    x = torch.randn(3, 4)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    # expand(2, 3, 6) writes the width 6 into the code: lin's outputs cannot change
    assert any("fixed or computed in code" in r for r in graph.pin_reasons()["lin.out"])
