"""Kernel-friendly widths: target calls round to the device's width and remove whole heads first;
ratio calls keep Torch-Pruning's widths unless they ask for ``round_to="auto"``."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import structprune as tp
from structprune.pruner.shapes import group_round_to, kernel_width
from tiny_models import TinyViT, vit_inputs


def _macs(model, x):
    return tp.utils.count_ops_and_params(model, x)[0]


def _convnet(widths=(16, 64, 128, 128)):
    torch.manual_seed(0)
    layers, width = [], 3
    for out in widths:
        layers += [nn.Conv2d(width, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
        width = out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10)).eval()


def _vit(dim=128, heads=4, depth=2):
    torch.manual_seed(0)
    return TinyViT(dim=dim, heads=heads, depth=depth).eval(), vit_inputs()


def test_kernel_width_per_device_and_dtype():
    assert kernel_width("cpu") == kernel_width() == 8
    assert kernel_width("cuda", torch.bfloat16) == kernel_width("cuda", "float16") == 64
    assert kernel_width("cuda", torch.float32) == 32


@pytest.mark.parametrize("base, initial, kind, step", [
    (8, 3072, "channel", 8), (8, 16, "channel", 4), (8, 6, "channel", 1), (64, 768, "channel", 64),
    (64, 64, "channel", 16), (8, 64, "head_dim", 16), (64, 64, "head_dim", 32), (8, 12, "head", None)])
def test_group_steps_shrink_for_narrow_groups(base, initial, kind, step):
    assert group_round_to(base, initial, kind) == step


def test_speedup_keeps_widths_in_multiples_of_the_cpu_width():
    model, x = _convnet(), torch.randn(1, 3, 16, 16)
    tp.pruner.MagnitudePruner(model, x, speedup=2.0, ignored_layers=[model[-1]]).step()
    widths = [m.out_channels for m in model if isinstance(m, nn.Conv2d)]
    assert widths[1:] != [64, 128, 128] and all(w % 8 == 0 for w in widths[1:]), widths
    assert widths[0] % 4 == 0, widths  # 16 wide: steps of 4, so it can still shrink
    assert model(x).shape == (1, 10)


def test_speedup_planned_for_a_gpu_rounds_to_64():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 1024), nn.ReLU(), nn.Linear(1024, 512), nn.ReLU(), nn.Linear(512, 10)).eval()
    x = torch.randn(4, 64)
    tp.pruner.MagnitudePruner(model, x, speedup=2.0, device="cuda", dtype=torch.bfloat16,
                              ignored_layers=[model[-1]]).step()
    assert model[0].out_features % 64 == 0 and model[2].out_features % 64 == 0
    assert (model[0].out_features, model[2].out_features) != (1024, 512)


def test_round_to_overrides_the_default():
    model, x = _convnet(), torch.randn(1, 3, 16, 16)
    tp.pruner.MagnitudePruner(model, x, speedup=2.0, round_to=1, ignored_layers=[model[-1]]).step()
    widths = [m.out_channels for m in model if isinstance(m, nn.Conv2d)]
    assert any(w % 8 for w in widths), widths  # no rounding: exact widths


@pytest.mark.parametrize("round_to, kept", [(None, 89), ("auto", 88)])
def test_ratio_calls_keep_torch_pruning_widths_unless_auto(round_to, kept):
    model, x = _convnet(), torch.randn(1, 3, 16, 16)
    tp.pruner.MagnitudePruner(model, x, pruning_ratio=0.3, round_to=round_to, ignored_layers=[model[-1]]).step()
    assert model[6].out_channels == kept  # int(128 * 0.7) = 89


def test_speedup_on_a_vit_drops_whole_heads_and_keeps_head_dim():
    model, x = _vit()
    attn = model.blocks[0].attn
    tp.pruner.MagnitudePruner(model, x, speedup=2.0, ignored_layers=[model.head]).step()
    assert all(b.attn.head_dim == 32 for b in model.blocks)
    assert sum(b.attn.num_heads for b in model.blocks) < 8
    assert attn.qkv.out_features == 3 * attn.num_heads * 32
    assert model(x).shape == (2, 10)


def test_speedup_prunes_head_dims_when_asked_in_kernel_friendly_steps():
    model, x = _vit()
    tp.pruner.MagnitudePruner(model, x, speedup=2.0, prune_num_heads=False, prune_head_dims=True,
                              ignored_layers=[model.head]).step()
    dims = [b.attn.head_dim for b in model.blocks]
    assert all(b.attn.num_heads == 4 for b in model.blocks)
    assert all(d % 16 == 0 for d in dims) and min(dims) < 32, dims


class _MhaEncoder(nn.Module):
    """A torchvision-style encoder block: nn.MultiheadAttention (128 wide) and an MLP."""

    def __init__(self, heads: int, mlp: int):
        super().__init__()
        self.embed = nn.Linear(12, 128)
        self.attn = nn.MultiheadAttention(128, heads, batch_first=True)
        self.fc1, self.fc2, self.head = nn.Linear(128, mlp), nn.Linear(mlp, 128), nn.Linear(128, 10)

    def forward(self, x):
        h = self.embed(x)
        h = h + self.attn(h, h, h, need_weights=False)[0]
        return self.head((h + self.fc2(torch.relu(self.fc1(h)))).mean(1))


def test_torchvision_style_attention_loses_whole_heads():
    # nn.MultiheadAttention ties the hidden size to heads x head_dim: a head is a slice of every layer
    torch.manual_seed(0)
    model, x = _MhaEncoder(heads=4, mlp=512).eval(), vit_inputs()
    tp.pruner.MagnitudePruner(model, x, speedup=1.5, ignored_layers=[model.head]).step()
    assert model.attn.embed_dim // model.attn.num_heads == 32
    assert model(x).shape == (2, 10)


@pytest.mark.parametrize("speedup", [1.3, 1.6, 2.0, 2.5])
def test_multihead_attention_keeps_an_even_head_count(speedup):
    """PyTorch's fused inference path of nn.MultiheadAttention refuses odd head counts: under a
    target (kernel-friendly widths) heads go two at a time, and the pruned model runs that path."""
    torch.manual_seed(0)
    model, x = _MhaEncoder(heads=8, mlp=256).eval(), vit_inputs()
    tp.pruner.MagnitudePruner(model, x, speedup=speedup, ignored_layers=[model.head]).step()
    assert model.attn.num_heads % 2 == 0 and model.attn.embed_dim % model.attn.num_heads == 0
    assert model(x).shape == (2, 10)


@pytest.mark.parametrize("speedup", [1.5, 2.0, 3.0])
@pytest.mark.parametrize("make", ["convnet", "vit"])
def test_speedup_lands_within_five_percent(make, speedup):
    model, x = (_convnet(), torch.randn(1, 3, 16, 16)) if make == "convnet" else _vit(dim=64, heads=4, depth=3)
    base = _macs(model, x)
    ignored = [model[-1]] if make == "convnet" else [model.head]
    tp.pruner.MagnitudePruner(model, x, speedup=speedup, ignored_layers=ignored).step()
    assert 0.95 * base / speedup <= _macs(model, x) <= base / speedup, _macs(model, x) / base
