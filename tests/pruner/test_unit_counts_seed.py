"""The unit counts find_groups made seed the pruner's per-group count cache."""

import torch
import torchvision

import structprune as tp


def test_seeded_counts_equal_fresh_groups():
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2(num_classes=10).eval()
    pruner = tp.pruner.MagnitudePruner(model, torch.randn(1, 3, 64, 64), pruning_ratio=0.5,
                                       ignored_layers=[model.classifier[1]])
    state, counts = pruner._unit_counts
    assert counts and len(counts) == len(pruner.records)
    for record in pruner.records:
        assert counts[id(record)] == pruner.current_units(record) == len(record.group(pruner.DG).units)
    pruner.step()
    for record in pruner.records:  # dead changed: counted again
        assert pruner.current_units(record) == len(record.group(pruner.DG).units)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)
