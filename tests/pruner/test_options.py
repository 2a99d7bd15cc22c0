"""Options passed through to the graph and the selection: ignored layers and parameters, root
types, forward_fn / output_transform, unwrapped parameters, customized pruners, interactive."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

import structprune as tp
from pruner.conftest import classifier, conv_widths, images, resnet18
from tiny_models import ConvNet, TinyViT, vit_inputs


def test_ignored_layers_keep_their_output_channels():
    model, x = resnet18(), images()
    keep = model.layer2[0].conv1
    tp.pruner.MagnitudePruner(model, x, pruning_ratio=0.5, ignored_layers=classifier(model) + [keep]).step()
    assert keep.out_channels == 128 and keep.in_channels == 32  # its input channels may still go
    assert model.layer2[1].conv1.out_channels == 64


def test_ignored_parameters_are_left_untouched():
    torch.manual_seed(0)
    model, x = TinyViT().eval(), vit_inputs()
    qkv = model.blocks[0].attn.qkv.weight
    tp.pruner.MagnitudePruner(model, x, pruning_ratio=0.5, ignored_layers=[model.head, qkv]).step()
    assert model.blocks[0].attn.qkv.weight.shape == (96, 32)
    assert model.blocks[1].attn.qkv.weight.shape == (48, 32) and model.blocks[0].fc1.out_features == 64


def test_root_module_types_limit_the_groups():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 8, 8)
    linear_only = ConvNet()
    tp.pruner.MagnitudePruner(linear_only, x, pruning_ratio=0.5, root_module_types=[nn.Linear]).step()
    assert [linear_only.conv1.out_channels, linear_only.conv2.out_channels] == [16, 32]
    convs = ConvNet()
    tp.pruner.MagnitudePruner(convs, x, pruning_ratio=0.5, root_module_types=[nn.Conv2d], ignored_layers=[convs.fc]).step()
    assert [convs.conv1.out_channels, convs.conv2.out_channels] == [8, 16]


class KeywordNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = ConvNet()

    def forward(self, image, scale=1.0):
        return {"logits": self.body(image) * scale, "aux": image.mean()}


def test_forward_fn_and_output_transform():
    torch.manual_seed(0)
    model = KeywordNet().eval()
    inputs = (torch.randn(1, 3, 8, 8), 2.0)
    pruner = tp.pruner.MagnitudePruner(
        model, inputs, pruning_ratio=0.5, ignored_layers=[model.body.fc],
        forward_fn=lambda m, inp: m(inp[0], scale=inp[1]), output_transform=lambda out: out["logits"], speedup=1.5)
    pruner.step()
    assert model.body.conv1.out_channels < 16
    assert model(*inputs)["logits"].shape == (1, 10)


def test_unwrapped_parameters_and_customized_pruners_are_accepted():
    torch.manual_seed(0)
    model, x = ConvNet(), torch.randn(1, 3, 8, 8)
    scale = nn.Parameter(torch.ones(1))
    model.register_parameter("extra", scale)
    pruner = tp.pruner.MagnitudePruner(model, x, pruning_ratio=0.5, ignored_layers=[model.fc],
                                       unwrapped_parameters=[(scale, 0)], customized_pruners={},
                                       channel_groups={}, in_channel_groups={})
    pruner.step()
    assert model.conv1.out_channels == 8


def test_interactive_groups_carry_the_chosen_units_and_match_plain_steps():
    model, x = resnet18(), images()
    twin = copy.deepcopy(model)
    interactive = tp.pruner.MagnitudePruner(model, x, pruning_ratio=0.5, iterative_steps=2,
                                            ignored_layers=classifier(model))
    plain = tp.pruner.MagnitudePruner(twin, x, pruning_ratio=0.5, iterative_steps=2, ignored_layers=classifier(twin))
    for _ in range(2):
        for group in interactive.step(interactive=True):
            assert 0 < len(group.idxs) < len(group.units)
            assert tp.verify_group(model, group, x) < 1e-4  # the units chosen are exactly what is removed
        plain.step()
    assert conv_widths(model) == conv_widths(twin)
    assert torch.allclose(model(x), twin(x), atol=1e-5)


def test_interactive_caller_may_change_the_indices():
    torch.manual_seed(0)
    model, x = ConvNet().eval(), torch.randn(1, 3, 8, 8)
    pruner = tp.pruner.MagnitudePruner(model, x, pruning_ratio=0.5, ignored_layers=[model.fc])
    for group in pruner.step(interactive=True):
        group.prune(idxs=[0, 1])
    assert (model.conv1.out_channels, model.conv2.out_channels) == (14, 30)


def test_tp_style_attributes():
    model, x = resnet18(), images()
    pruner = tp.pruner.MetaPruner(model, x, ch_sparsity=0.3, max_ch_sparsity=0.9, iterative_steps=3)
    assert tp.pruner.MetaPruner is tp.pruner.BasePruner
    assert pruner.pruning_ratio == 0.3 and pruner.iterative_steps == 3 and pruner.options.max_pruning_ratio == 0.9
    assert isinstance(pruner.DG, tp.DependencyGraph)
    assert len(list(pruner.get_all_groups())) == len(pruner.records) > 0
    pruner.step()
    pruner.reset()
    assert pruner.current_step == 0
