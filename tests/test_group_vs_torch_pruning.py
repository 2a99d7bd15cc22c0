"""Groups list the layer dependencies Torch-Pruning 1.6 lists (skipped without torch-pruning).

Both libraries also list the parameter-free ops that carry the channels (relu, pooling, add,
flatten); Torch-Pruning adds artefacts of its autograd trace (a weight transpose), so op counts
are compared as "no more than Torch-Pruning".
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import structprune as sp

torch_pruning = pytest.importorskip("torch_pruning")
torchvision = pytest.importorskip("torchvision")


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(2))
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(x), 1))


def _listing(lib, model, x, layer):
    DG = lib.DependencyGraph().build_dependency(model, example_inputs=x)
    group = DG.get_pruning_group(layer, lib.prune_conv_out_channels, idxs=[0, 1])
    names = {m: n for n, m in model.named_modules()}
    layers = sorted((names[d.target.module], d.handler.__name__, list(i)) for d, i in group
                    if isinstance(d.target.module, nn.Module) and d.target.module in names)
    root = group[0][0]
    return layers, len(group) - len(layers), names[root.target.module]


CASES = [
    ("cnn conv-bn-relu-conv", CNN, (1, 3, 8, 8), lambda m: m.features[0]),
    ("cnn into flatten-fc", CNN, (1, 3, 8, 8), lambda m: m.features[3]),
    ("resnet18 conv1", lambda: torchvision.models.resnet18(), (1, 3, 32, 32), lambda m: m.conv1),
    ("mobilenet_v2 depthwise", lambda: torchvision.models.mobilenet_v2(), (1, 3, 32, 32),
     lambda m: m.features[1].conv[0][0]),
]


@pytest.mark.parametrize("name,make,shape,layer", CASES, ids=[c[0] for c in CASES])
def test_same_layer_dependencies_as_torch_pruning(name, make, shape, layer):
    results = []
    for lib in (torch_pruning, sp):
        torch.manual_seed(0)
        model = make().eval()
        results.append(_listing(lib, model, torch.randn(*shape), layer(model)))
    (tp_layers, tp_ops, tp_root), (our_layers, our_ops, our_root) = results
    assert our_layers == tp_layers and our_root == tp_root
    assert our_ops <= tp_ops


def test_conv_bn_conv_is_three_entries_in_both():
    for lib in (torch_pruning, sp):
        model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1)).eval()
        DG = lib.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, 3, 4, 4))
        assert len(DG.get_pruning_group(model[0], lib.prune_conv_out_channels, idxs=[0])) == 3


def test_history_recorded_by_torch_pruning_replays_here():
    torch.manual_seed(0)
    theirs, x = CNN().eval(), torch.randn(1, 3, 8, 8)
    DG = torch_pruning.DependencyGraph().build_dependency(theirs, example_inputs=x)
    DG.get_pruning_group(theirs.features[0], torch_pruning.prune_conv_out_channels, idxs=[1, 4]).prune()
    DG.get_pruning_group(theirs.features[3], torch_pruning.prune_conv_out_channels, idxs=[0, 2, 9]).prune()
    ours = CNN().eval()
    sp.DependencyGraph().build_dependency(ours, example_inputs=x).load_pruning_history(DG.pruning_history())
    ours.load_state_dict(theirs.state_dict())
    assert torch.allclose(ours(x), theirs(x), atol=1e-6)
