"""The seed README's examples, run as written with ``import structprune as tp`` (random weights)."""

from __future__ import annotations

import torch
import torch.nn as nn
from torchvision.models import resnet18

import structprune as tp
from structprune.group import OpTarget

CONV1_GROUP = {
    # the 16 coupled operations of the README's printout: same layers and ops
    ("prune_out_channels", "conv1"), ("prune_out_channels", "bn1"),
    ("op", "relu", "relu"), ("op", "max_pool2d", "maxpool"), ("op", "add", "layer1.0"),
    ("prune_in_channels", "layer1.0.conv1"), ("prune_out_channels", "layer1.0.bn2"),
    ("op", "relu", "layer1.0.relu"), ("op", "add", "layer1.1"), ("prune_in_channels", "layer1.1.conv1"),
    ("prune_out_channels", "layer1.1.bn2"), ("op", "relu", "layer1.1.relu"),
    ("prune_in_channels", "layer2.0.downsample.0"), ("prune_in_channels", "layer2.0.conv1"),
    ("prune_out_channels", "layer1.1.conv2"), ("prune_out_channels", "layer1.0.conv2"),
}


def _member(dep) -> tuple:
    if isinstance(dep.target, OpTarget):
        return ("op", dep.target.node.op.rstrip("_"), dep.target.node.scope)
    return (dep.handler.__name__, dep.target.name)


def test_minimal_example(tmp_path, capsys):
    model = resnet18().eval()  # pretrained=True in the README; no downloads here

    DG = tp.DependencyGraph()
    DG.build_dependency(model, example_inputs=torch.randn(1, 3, 224, 224))

    pruning_idxs = [2, 6, 9]
    pruning_group = DG.get_pruning_group(model.conv1, tp.prune_conv_out_channels, idxs=pruning_idxs)
    print(pruning_group.details())
    print(pruning_group)

    assert len(pruning_group) == 16
    assert {_member(dep) for dep, _ in pruning_group} == CONV1_GROUP
    assert all(idxs == pruning_idxs for _, idxs in pruning_group)
    assert "(Pruning Root)" in capsys.readouterr().out

    if DG.check_pruning_group(pruning_group):
        pruning_group.prune()
    assert model.conv1.out_channels == 61 and model.layer2[0].downsample[0].in_channels == 61

    x = torch.randn(1, 3, 224, 224)
    path = tmp_path / "model.pth"
    torch.save(model, path)
    model_loaded = torch.load(path, weights_only=False)
    with torch.no_grad():
        assert torch.equal(model(x), model_loaded.eval()(x))
    assert model_loaded.conv1.weight.shape == (61, 3, 7, 7)


def test_scan_all_groups():
    model = resnet18().eval()
    DG = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, 3, 64, 64))
    roots = []
    for group in DG.get_all_groups(ignored_layers=[model.conv1], root_module_types=[nn.Conv2d, nn.Linear]):
        idxs = [2, 4, 6]
        group.prune(idxs=idxs)
        print(group)
        roots.append(group.root.name)
    # conv1's group is skipped; each block's inner conv and each stage's shared channels are scanned
    assert "conv1" not in roots and len(roots) == 8 + 3
    assert model.conv1.out_channels == 64 and model.layer1[0].conv1.out_channels == 61
    assert model.layer2[0].conv2.out_channels == 125 and model.layer4[1].bn2.num_features == 509
    assert model.fc.in_features == 509 and model.fc.out_features == 1000
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_low_level_pruning_functions():
    model = resnet18().eval()
    tp.prune_conv_out_channels(model.conv1, idxs=[2, 6, 9])
    tp.prune_batchnorm_out_channels(model.bn1, idxs=[2, 6, 9])
    tp.prune_conv_in_channels(model.layer1[0].conv1, idxs=[2, 6, 9])
    assert model.conv1.weight.shape == (61, 3, 7, 7) and model.bn1.running_var.shape == (61,)
    assert model.layer1[0].conv1.in_channels == 61 and model.layer1[0].conv1.weight.shape[1] == 61
    listed = [
        tp.prune_conv_out_channels, tp.prune_conv_in_channels, tp.prune_depthwise_conv_out_channels,
        tp.prune_depthwise_conv_in_channels, tp.prune_batchnorm_out_channels, tp.prune_batchnorm_in_channels,
        tp.prune_linear_out_channels, tp.prune_linear_in_channels, tp.prune_prelu_out_channels,
        tp.prune_prelu_in_channels, tp.prune_layernorm_out_channels, tp.prune_layernorm_in_channels,
        tp.prune_embedding_out_channels, tp.prune_embedding_in_channels, tp.prune_parameter_out_channels,
        tp.prune_parameter_in_channels, tp.prune_multihead_attention_out_channels,
        tp.prune_multihead_attention_in_channels,
    ]
    assert all(callable(fn) for fn in listed)
    fc = tp.prune_linear_in_channels(model.fc, idxs=[0, 1])
    assert fc is model.fc and fc.in_features == 510
