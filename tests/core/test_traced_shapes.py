"""Sizes read from tensor shapes carry their provenance through the trace: a literal ``3`` is told
apart from ``C // head_dim``, so a model is no longer pinned by a coincidence of sizes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

import structprune as tp
from structprune.trace.traced_int import TracedInt, escape_log


class TimmStyleAttention(nn.Module):
    """timm's ViT attention: ``qkv.reshape(B, N, 3, heads, head_dim)`` with a literal 3; with
    ``dim=12, heads=3`` the width read from ``x.shape`` divided by ``head_dim`` is 3 too."""

    def __init__(self, dim=12, heads=3):
        super().__init__()
        self.num_heads, self.head_dim = heads, dim // heads
        self.attn_dim = heads * self.head_dim
        self.qkv = nn.Linear(dim, 3 * self.attn_dim)
        self.proj = nn.Linear(self.attn_dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        out = torch.softmax(q @ k.transpose(-2, -1) * self.head_dim ** -0.5, dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(B, N, self.attn_dim))


class Block(nn.Module):
    def __init__(self, attention: nn.Module, dim=12):
        super().__init__()
        self.stem, self.attn, self.head = nn.Linear(5, dim), attention, nn.Linear(dim, 4)

    def forward(self, x):
        h = self.stem(x)
        return self.head(h + self.attn(h))


def test_shape_reads_are_traced_ints_with_their_dims():
    C = TracedInt.read(12, "value", 2)
    head_dim = TracedInt(4, {("module", "head_dim")})
    computed = C // head_dim
    assert computed == 3 and computed.reads == {("value", 2)} and not computed.exact
    assert computed.sources == {("module", "head_dim")} and not computed.adaptive
    assert (C * 1).exact and (C + 0).exact and not (C - 1).exact
    assert isinstance(math.floor(C), TracedInt) and isinstance(abs(C), TracedInt)
    assert (2 * head_dim).adaptive and not (2 * head_dim).reads  # attribute rules unchanged
    lost = []
    with escape_log(lambda: lost.append(1)):
        int(C / 2)
    assert lost


def test_literal_three_does_not_pin_the_residual_width():
    torch.manual_seed(0)
    model, x = Block(TimmStyleAttention()).eval(), torch.randn(2, 5, 5)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    assert not graph.trace.escapes
    assert "stem.out" not in graph.pin_reasons()
    group = graph.get_pruning_group(model.stem, tp.prune_linear_out_channels, idxs=[0, 5])
    assert tp.verify_group(model, group, x) < 1e-5
    assert model.stem.out_features == 10 and model.attn.qkv.in_features == 10 and model.attn.proj.out_features == 10
    assert model(x).shape == (2, 5, 4)


def test_width_computed_from_a_shape_still_pins():
    class ComputedHeads(TimmStyleAttention):
        def forward(self, x):
            B, N, C = x.shape
            qkv = self.qkv(x).reshape(B, N, 3, C // self.head_dim, self.head_dim)  # heads from the input width
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
            out = torch.softmax(q @ k.transpose(-2, -1), dim=-1) @ v
            return self.proj(out.transpose(1, 2).reshape(B, N, self.attn_dim))

    model = Block(ComputedHeads()).eval()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(2, 5, 5))
    assert any("fixed or computed in code" in r for r in graph.pin_reasons()["stem.out"])


def test_size_that_left_the_integers_falls_back_to_the_size_check():
    class FloatHeads(TimmStyleAttention):
        def forward(self, x):
            B, N, C = x.shape
            heads = int(C / self.head_dim)  # provenance lost: a plain 3
            qkv = self.qkv(x).reshape(B, N, 3, heads, self.head_dim)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
            out = torch.softmax(q @ k.transpose(-2, -1), dim=-1) @ v
            return self.proj(out.transpose(1, 2).reshape(B, N, self.attn_dim))

    model = Block(FloatHeads()).eval()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(2, 5, 5))
    assert graph.trace.escapes
    assert "stem.out" in graph.pin_reasons()


def test_hf_vit_head_dims_prune_together_and_reload(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.ViTConfig(image_size=16, patch_size=8, hidden_size=16, num_hidden_layers=1,
                                    num_attention_heads=2, intermediate_size=32, num_labels=3)
    model, x = transformers.ViTForImageClassification(config).eval(), torch.randn(1, 3, 16, 16)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x, output_transform=lambda o: o.logits)
    attention = model.vit.layers[0].attention
    head_dims = [g for g in graph.get_all_groups(ignored_layers=[model.classifier])
                 if len(g.units) == 8 and any(t.module is attention.v_proj for t in g.member_targets())]
    assert head_dims, "q/k and v head dims form one prunable group"
    group = tp.Group(graph, head_dims[0].root, head_dims[0].units, [1, 6])
    assert tp.verify_group(model, group, x, forward_fn=lambda m, i: m(i).logits) < 1e-5
    assert attention.head_dim == 6 and attention.v_proj.out_features == 12 and attention.q_proj.out_features == 12
    model.save_pretrained(tmp_path)  # the adapter folded the new head_dim ** -0.5 scaling into q_proj
    reloaded = transformers.ViTForImageClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert (model(x).logits - reloaded(x).logits).abs().max() < 1e-5
