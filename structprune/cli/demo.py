"""The demo: prune half the channels of every group of a ResNet-18 and check it still runs."""

from __future__ import annotations

import time

import torch


def run_demo(ratio: float = 0.5) -> int:
    from torchvision.models import resnet18

    import structprune as tp

    torch.manual_seed(0)
    model = resnet18().eval()
    example = torch.randn(1, 3, 224, 224)
    before = sum(p.numel() for p in model.parameters())
    start = time.perf_counter()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    print(f"traced resnet18 in {time.perf_counter() - start:.2f}s")
    groups = list(graph.get_all_groups())
    print(f"{len(groups)} prunable groups:")
    for group in groups:
        layers = sorted({t.name for t in group.member_targets() if t.is_layer})
        print(f"  {len(group.units):4d} channels  root={group.root.name:24s} couples {len(layers)} layers")
    for group in groups:
        n = int(len(group.units) * ratio)
        scores = group.root.module.weight.detach().abs().flatten(1).sum(1) if hasattr(group.root.module, "weight") else None
        order = torch.argsort(scores)[:n].tolist() if scores is not None and len(scores) == len(group.units) else list(range(n))
        group.prune(idxs=order)
    after = sum(p.numel() for p in model.parameters())
    out = model(example)
    print(f"parameters: {before:,} -> {after:,} ({after / before:.1%}); output shape {tuple(out.shape)}")
    return 0
