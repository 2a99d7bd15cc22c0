"""MAC and parameter counts checked against hand-computed values and published figures."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import structprune as tp
from structprune.utils import count_ops_and_params, count_ops_per_module, count_params, register_mac_rule
from structprune.utils.mac_rules import _RULES


def macs(model, inputs, **kwargs) -> int:
    return count_ops_and_params(model, inputs, **kwargs)[0]


@pytest.mark.parametrize("layer, shape, expected", [
    (nn.Conv2d(3, 8, 3, padding=1), (2, 3, 10, 10), 2 * 8 * 10 * 10 * 3 * 9),
    (nn.Conv2d(8, 16, 3, groups=4, stride=2, padding=1), (1, 8, 8, 8), 16 * 4 * 4 * 2 * 9),
    (nn.Conv2d(8, 8, 3, groups=8, padding=1), (1, 8, 6, 6), 8 * 6 * 6 * 9),
    (nn.Conv1d(4, 6, 3), (2, 4, 10), 2 * 6 * 8 * 4 * 3),
    (nn.Conv3d(2, 4, 2), (1, 2, 3, 3, 3), 4 * 8 * 2 * 8),
    (nn.ConvTranspose2d(4, 6, 2, stride=2), (1, 4, 5, 5), 4 * 5 * 5 * 6 * 4),
    (nn.ConvTranspose2d(4, 6, 3, groups=2, padding=1), (1, 4, 5, 5), 4 * 5 * 5 * 3 * 9),
    (nn.Linear(10, 7), (3, 5, 10), 3 * 5 * 7 * 10),
    (nn.Bilinear(3, 4, 5), None, 2 * 5 * 3 * 4),
    (nn.BatchNorm2d(8), (2, 8, 4, 4), 2 * 256),
    (nn.BatchNorm2d(8, affine=False), (2, 8, 4, 4), 256),
    (nn.LayerNorm(32), (2, 6, 32), 2 * 384),
    (nn.GroupNorm(2, 8), (2, 8, 4, 4), 2 * 256),
    (nn.InstanceNorm2d(8), (2, 8, 4, 4), 256),
    (nn.Embedding(10, 4), None, 0),
    (nn.Sequential(nn.ReLU(), nn.MaxPool2d(2), nn.Softmax(1)), (1, 3, 4, 4), 0),
])
def test_layer_macs(layer, shape, expected):
    if isinstance(layer, nn.Bilinear):
        inputs = (torch.randn(2, 3), torch.randn(2, 4))
    elif isinstance(layer, nn.Embedding):
        inputs = torch.randint(0, 10, (2, 5))
    else:
        inputs = torch.randn(shape)
    assert count_ops_and_params(layer, inputs) == (expected, count_params(layer))


class Attention(nn.Module):
    """A ViT-style block: fused qkv projection, heads, then sdpa, explicit matmuls or einsum."""

    def __init__(self, dim=32, heads=4, kind="sdpa"):
        super().__init__()
        self.heads, self.kind = heads, kind
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        if self.kind == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v)
        elif self.kind == "matmul":
            out = (q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5).softmax(-1) @ v
        else:
            attn = torch.einsum("bhld,bhsd->bhls", q, k).softmax(-1)
            out = torch.einsum("bhls,bhsd->bhld", attn, v)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


# x (2, 6, 32), 4 heads of 8: qkv 12*96*32, q k^T and attn v 2*(2*4*6*6*8), proj 12*32*32
ATTENTION_MACS = 12 * 96 * 32 + 2 * (2 * 4 * 6 * 6 * 8) + 12 * 32 * 32


@pytest.mark.parametrize("kind", ["sdpa", "matmul", "einsum"])
def test_attention_block(kind):
    assert macs(Attention(kind=kind), torch.randn(2, 6, 32)) == ATTENTION_MACS


def test_sdpa_cross_attention_with_other_value_dim():
    class Cross(nn.Module):
        def forward(self, q, k, v):
            return F.scaled_dot_product_attention(q, k, v)

    q, k, v = torch.randn(2, 4, 6, 8), torch.randn(2, 4, 5, 8), torch.randn(2, 4, 5, 3)
    assert macs(Cross(), (q, k, v)) == 2 * 4 * 6 * 5 * 8 + 2 * 4 * 6 * 5 * 3


@pytest.mark.parametrize("need_weights", [True, False])
def test_multihead_attention_self(need_weights):
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = nn.MultiheadAttention(32, 4, batch_first=True)

        def forward(self, x):
            return self.mha(x, x, x, need_weights=need_weights)[0]

    assert macs(Block(), torch.randn(2, 6, 32)) == ATTENTION_MACS


def test_multihead_attention_other_kv_dims_and_bias_kv():
    mha = nn.MultiheadAttention(32, 4, kdim=16, vdim=12, add_bias_kv=True)
    query, key, value = torch.randn(6, 2, 32), torch.randn(5, 2, 16), torch.randn(5, 2, 12)
    projections = 12 * 32 * 32 * 2 + 10 * 16 * 32 + 10 * 12 * 32
    attention = 2 * 12 * (5 + 1) * 32  # bias_k adds one key position
    assert macs(mha, (query, key, value)) == projections + attention


def test_einsum_ellipsis_implicit_output_and_three_operands():
    class Ops(nn.Module):
        def forward(self, a, b, c):
            x = torch.einsum("...ij,...jk", a, b)  # (5, 2, 4): 5*2*3*4
            return torch.einsum("bij,jk,kl->bil", x, c, c)  # 5*2*4*4 then 5*2*4*4

    a, b, c = torch.randn(5, 2, 3), torch.randn(5, 3, 4), torch.randn(4, 4)
    assert macs(Ops(), (a, b, c)) == 5 * 2 * 3 * 4 + 2 * (5 * 2 * 4 * 4)


def test_tied_parameters_count_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed, self.head = nn.Embedding(50, 16), nn.Linear(16, 50, bias=False)
            self.head.weight = self.embed.weight

        def forward(self, ids):
            return self.head(self.embed(ids))

    assert count_ops_and_params(Tied(), torch.randint(0, 50, (2, 3))) == (6 * 50 * 16, 50 * 16)


def test_meta_device_dict_inputs_and_forward_fn():
    model = Attention()
    x = torch.randn(2, 6, 32)
    assert macs(model, {"x": x}) == macs(model, [x]) == ATTENTION_MACS
    assert macs(model, {"x": x}, forward_fn=lambda m, inp: m(inp["x"]).sum()) == ATTENTION_MACS
    assert macs(model.to("meta"), x.to("meta")) == ATTENTION_MACS


def test_modes_and_running_stats_are_left_alone():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout()).train()
    model[2].eval()
    stats = model[1].running_mean.clone()
    count_ops_and_params(model, torch.randn(2, 3, 8, 8))
    assert model.training and model[1].training and not model[2].training
    assert torch.equal(model[1].running_mean, stats) and int(model[1].num_batches_tracked) == 0


def test_per_module_breakdown_and_layer_wise():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)), nn.Linear(6, 2))
    x = torch.randn(1, 3, 8, 8)
    table = count_ops_per_module(model, x)
    conv0, conv1, bn, fc = 4 * 36 * 27, 4 * 36 * 4, 2 * 4 * 36, 4 * 6 * 2 * 6
    assert table["0"] == (conv0, 4 * 27 + 4)
    assert table["1"] == (conv1 + bn, 20 + 8) and table["1.1"] == (bn, 8)
    assert table[""] == (conv0 + conv1 + bn + fc, count_params(model))
    total, params, layer_macs, layer_params = count_ops_and_params(model, x, layer_wise=True)
    assert (total, params) == table[""] and layer_macs[model[2]] == fc and layer_params[model[2]] == 14


def test_layer_wise_lists_every_module_and_sums_to_the_totals():
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.resnet18()
    x = torch.randn(1, 3, 32, 32)
    macs, params, layer_macs, layer_params = count_ops_and_params(model, x, True)  # TP's positional order
    assert (macs, params) == count_ops_and_params(model, x)
    assert list(layer_macs) == list(model.modules()) and list(layer_params) == list(model.modules())
    assert layer_macs[model.relu] == 0 and layer_params[model.relu] == 0
    assert layer_macs[model] == macs and layer_params[model] == params
    leaves = [m for m in model.modules() if not list(m.children())]
    # ops outside leaf modules: the residual adds in each BasicBlock, flatten
    outside = macs - sum(layer_macs[m] for m in leaves)
    blocks = [m for m in model.modules() if isinstance(m, torchvision.models.resnet.BasicBlock)]
    assert outside == sum(layer_macs[b] - sum(layer_macs[c] for c in b.children()) for b in blocks)
    assert sum(layer_params[m] for m in leaves) == params
    for block in blocks:
        assert layer_macs[block] >= sum(layer_macs[c] for c in block.children())


def test_register_mac_rule_for_another_op():
    class Outer(nn.Module):
        def forward(self, a, b):
            return torch.outer(a, b)

    inputs = (torch.randn(3), torch.randn(5))
    assert macs(Outer(), inputs) == 0
    register_mac_rule("outer")(lambda node: 3 * 5)
    try:
        assert macs(Outer(), inputs) == 15
    finally:
        del _RULES["outer"]


def norm_macs(model, x) -> int:
    table = count_ops_per_module(model, x)
    return sum(table[n][0] for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._NormBase))


def test_resnet18_matches_published_figures_and_torch_flop_counter():
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.resnet18()
    x = torch.randn(1, 3, 224, 224, device="meta")
    total, params = count_ops_and_params(model.to("meta"), x)
    assert params == 11_689_512  # torchvision's published parameter count
    assert abs(total / 1e9 - 1.82) < 0.005  # published: 1.82 GMACs (torchvision lists "1.81 GFLOPS")
    with FlopCounterMode(display=False) as counter:
        model(x)
    assert total - norm_macs(model, x) == counter.get_total_flops() // 2  # conv + linear agree exactly


def test_transformer_block_matches_torch_flop_counter():
    model = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True, dropout=0.0)
    x = torch.randn(2, 6, 32)
    # training mode avoids the fused fast path; the math backend makes sdpa's matmuls visible
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        model(x)
    layer_norms, feed_forward = 2 * (2 * 12 * 32), 2 * (12 * 64 * 32)
    assert macs(model, x) == ATTENTION_MACS + feed_forward + layer_norms
    assert macs(model, x) - layer_norms == counter.get_total_flops() // 2


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_bert_by_hand(attention):
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=128, vocab_size=100, attn_implementation=attention)
    model = transformers.BertModel(config)
    tokens, hidden, inner = 2 * 8, 64, 128
    per_layer = 4 * tokens * hidden * hidden + 2 * (2 * 8 * 8 * hidden) + 2 * tokens * hidden * inner \
        + 2 * (2 * tokens * hidden)  # q/k/v/o, attention matmuls, feed-forward, two LayerNorms
    expected = 2 * per_layer + 2 * tokens * hidden + 2 * hidden * hidden  # embedding LayerNorm, pooler
    assert macs(model, {"input_ids": torch.randint(0, 100, (2, 8))}) == expected


def test_exported_from_package():
    assert tp.utils.count_ops_and_params is count_ops_and_params
