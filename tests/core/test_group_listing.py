"""Group listing on a built graph: the one-pass unit lists and the early skip of one-unit groups
give what the per-space calls give; traced int containers keep their values and sources."""

from __future__ import annotations

import torch
import torch.nn as nn

import structprune as tp
from structprune.trace.traced_int import TracedInt, _traced_container, _traced_flat
from tests.tiny_models import ConvNet, TinyViT, image_inputs, vit_inputs


class OneChannel(nn.Module):
    """A one-channel bottleneck: its space has a single unit."""

    def __init__(self):
        super().__init__()
        self.squeeze, self.expand, self.fc = nn.Conv2d(3, 1, 1), nn.Conv2d(1, 6, 3), nn.Linear(6, 2)

    def forward(self, x):
        return self.fc(self.expand(self.squeeze(x)).mean((2, 3)))


def _graphs():
    torch.manual_seed(0)
    for model, inputs in ((ConvNet().eval(), image_inputs()), (TinyViT().eval(), vit_inputs()),
                          (OneChannel().eval(), image_inputs(16))):
        yield tp.DependencyGraph().build_dependency(model, example_inputs=inputs)


def test_units_per_group_matches_units_of():
    for graph in _graphs():
        for target in graph.targets:
            gids = sorted(target.groups)
            batch = graph.units_per_group(target, gids)
            assert list(batch) == gids
            assert all(batch[gid] == graph.units_of(target, gid) for gid in gids)


def test_min_units_skips_only_small_groups():
    for graph in _graphs():
        every = [(g.root.label(), g.units) for g in graph.get_all_groups()]
        kept = [(g.root.label(), g.units) for g in graph.get_all_groups(min_units=2)]
        assert kept == [(label, units) for label, units in every if len(units) >= 2]
        assert kept
    assert len(every) > len(kept)  # OneChannel's squeeze space: one unit


def test_pruning_while_listing_gives_groups_as_they_are_now():
    graph = next(_graphs())
    model = graph.model
    for group in graph.get_all_groups(ignored_layers=[model.fc] if hasattr(model, "fc") else []):
        assert group.units == graph.units_of(group.root, next(iter(group.gids)))
        if len(group.units) > 1 and graph.check_pruning_group(group):
            group.idxs = [0]
            group.prune()
    out = model(image_inputs())
    assert torch.isfinite(out).all()


def test_flat_int_container_traced_like_nested_path():
    owner = nn.Conv2d(3, 4, 3)
    for value in [(1, 1), [3, 5, 3], (0,)]:
        flat, general = _traced_flat(value, (owner, "stride")), _traced_container(value, (owner, "stride"))
        assert type(flat) is type(value) and flat == general
        for a, b in zip(flat, general):
            assert type(a) is TracedInt and int(a) == int(b)
            assert (a.sources, a.derived, a.adaptive, a.attributes_only, a.reads, a.exact) == \
                (b.sources, b.derived, b.adaptive, b.attributes_only, b.reads, b.exact)
    assert _traced_flat((), (owner, "x")) is None and _traced_flat((1, (2,)), (owner, "x")) is None
