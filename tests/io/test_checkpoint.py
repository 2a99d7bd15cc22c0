"""Pruned models saved with structprune.state_dict load into fresh models with weights_only=True."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn as nn

import structprune as tp
from structprune.verify import max_output_difference


def roundtrip(model: nn.Module) -> dict:
    """``tp.state_dict(model)`` through ``torch.save`` and ``torch.load(weights_only=True)``."""
    buffer = io.BytesIO()
    torch.save(tp.state_dict(model), buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def prune_every_group(model: nn.Module, inputs, step: int = 3, limit: int | None = None) -> None:
    """Remove every ``step``-th unit of each group the graph offers (or of the first ``limit``)."""
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=inputs)
    for k, group in enumerate(graph.get_all_groups()):
        if limit is not None and k >= limit:
            break
        idxs = list(range(0, len(group.units), step))
        if len(idxs) < len(group.units) and group.is_valid(idxs):
            group.prune(idxs)


def run(model: nn.Module, inputs):
    with torch.no_grad():
        return model(**inputs) if isinstance(inputs, dict) else model(inputs)


def assert_same_structure(loaded: nn.Module, pruned: nn.Module) -> None:
    shapes = {k: tuple(v.shape) for k, v in pruned.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in loaded.state_dict().items()} == shapes
    for (name, a), (_, b) in zip(loaded.named_modules(), pruned.named_modules()):
        assert tp.io.structure.size_attributes(a) == tp.io.structure.size_attributes(b), name


def check_roundtrip(pruned: nn.Module, fresh: nn.Module, inputs) -> nn.Module:
    original = sum(p.numel() for p in fresh.parameters())
    assert sum(p.numel() for p in pruned.parameters()) < original, "nothing was pruned"
    loaded = tp.load_state_dict(fresh.eval(), state_dict=roundtrip(pruned.eval()))
    assert loaded is fresh
    assert_same_structure(loaded, pruned)
    assert max_output_difference(run(loaded, inputs), run(pruned, inputs)) == 0
    return loaded


def test_resnet18():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model, x = torchvision.models.resnet18().eval(), torch.randn(1, 3, 64, 64)
    prune_every_group(model, x)
    loaded = check_roundtrip(model, torchvision.models.resnet18(), x)
    assert loaded.layer1[0].conv1.out_channels == model.layer1[0].conv1.out_channels < 64


@pytest.mark.slow
def test_resnet50():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model, x = torchvision.models.resnet50().eval(), torch.randn(1, 3, 64, 64)
    prune_every_group(model, x, step=4)
    check_roundtrip(model, torchvision.models.resnet50(), x)


class AttentionNet(nn.Module):
    def __init__(self, kdim=None):
        super().__init__()
        self.query, self.key = nn.Linear(8, 32), nn.Linear(8, kdim or 32)
        self.mha = nn.MultiheadAttention(32, 4, batch_first=True, kdim=kdim, vdim=kdim)
        self.head = nn.Linear(32, 3)

    def forward(self, x):
        key = self.key(x)
        return self.head(self.mha(self.query(x), key, key)[0])


@pytest.mark.parametrize("kdim", [None, 12])
def test_multihead_attention(kdim):
    torch.manual_seed(0)
    model, x = AttentionNet(kdim).eval(), torch.randn(2, 5, 8)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    groups = {len(g.units): g for g in graph.get_all_groups()}
    groups[4].prune([1])  # one head
    groups[8].prune([0, 5])  # two positions of every head
    if kdim:
        groups[12].prune([3, 4, 7])  # key/value input dims
    loaded = check_roundtrip(model, AttentionNet(kdim), x)
    mha = loaded.mha
    assert (mha.embed_dim, mha.num_heads, mha.head_dim, mha.out_proj.in_features) == (18, 3, 6, 18)
    assert mha._qkv_same_embed_dim == (kdim is None) and mha.kdim == (18 if kdim is None else 9)


class RecurrentNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp, self.rnn, self.out = nn.Linear(4, 8), nn.LSTM(8, 12, num_layers=2, batch_first=True), nn.Linear(12, 3)

    def forward(self, x):
        return self.out(self.rnn(self.inp(x))[0])


def test_lstm_flat_weights_follow_the_new_shapes():
    torch.manual_seed(0)
    model, x = RecurrentNet().eval(), torch.randn(2, 5, 4)
    prune_every_group(model, x)
    loaded = check_roundtrip(model, RecurrentNet(), x)
    assert loaded.rnn.input_size == 5 and loaded.rnn._flat_weights[0] is loaded.rnn.weight_ih_l0


def bert_config(**overrides):
    transformers = pytest.importorskip("transformers")
    return transformers.BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                   intermediate_size=128, vocab_size=100, **overrides)


def test_bert_ffn_and_head():
    from transformers import BertModel

    torch.manual_seed(0)
    model = BertModel(bert_config()).eval()
    inputs = {"input_ids": torch.randint(0, 100, (2, 8)), "attention_mask": torch.ones(2, 8, dtype=torch.long)}
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=inputs)
    for k, layer in enumerate(model.encoder.layer):
        idxs = list(range(k, 128, 3 + k))  # a different width in each layer
        graph.get_pruning_group(layer.intermediate.dense, tp.prune_linear_out_channels, idxs=idxs).prune()
    heads = [g for g in graph.get_all_groups() if len(g.units) == 4]
    if heads:
        heads[0].prune([2])
    model.config.intermediate_size = 100  # config fields travel too
    fresh = BertModel(bert_config())
    check_roundtrip(model, fresh, inputs)
    widths = [layer.intermediate.dense.out_features for layer in fresh.encoder.layer]
    assert widths == [layer.intermediate.dense.out_features for layer in model.encoder.layer] and widths[0] != widths[1]
    assert fresh.config.intermediate_size == 100
    assert fresh.encoder.layer[0].attention.self.query.out_features == (48 if heads else 64)


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed, self.head = nn.Embedding(20, 16), nn.Linear(16, 20, bias=False)
        self.head.weight = self.embed.weight
        self.register_buffer("scale", torch.ones(16), persistent=False)

    def forward(self, ids):
        return self.head(self.embed(ids) * self.scale)


def shrink_tied(model: Tied, keep: int) -> Tied:
    """Prune the shared embedding dim by hand (tied weight, non-persistent buffer, attributes)."""
    with torch.no_grad():
        model.embed.weight = nn.Parameter(model.embed.weight[:, :keep].clone())
        model.head.weight = model.embed.weight
        model.scale = torch.linspace(0.5, 2.0, keep)
    model.embed.embedding_dim = model.head.in_features = keep
    return model


def test_tied_weights_stay_tied_and_non_persistent_buffers_are_restored():
    ids = torch.randint(0, 20, (2, 5))
    model = shrink_tied(Tied(), 10)
    loaded = check_roundtrip(model, Tied(), ids)
    assert loaded.head.weight is loaded.embed.weight and "scale" not in loaded.state_dict()
    assert torch.equal(loaded.scale, model.scale)


def test_fresh_model_keeps_its_dtype_and_requires_grad():
    ids = torch.randint(0, 20, (2, 5))
    model = shrink_tied(Tied(), 10)
    fresh = Tied().double()
    fresh.embed.weight.requires_grad_(False)
    loaded = tp.load_state_dict(fresh, roundtrip(model))
    assert loaded.embed.weight.dtype == torch.float64 and not loaded.embed.weight.requires_grad
    assert loaded.scale.dtype == torch.float64
    assert torch.allclose(run(loaded, ids), run(model.double(), ids))


def test_meta_model_with_assign():
    ids = torch.randint(0, 20, (2, 5))
    model = shrink_tied(Tied(), 10)
    with torch.device("meta"):
        fresh = Tied()
    loaded = tp.load_state_dict(fresh, roundtrip(model), assign=True)
    assert loaded.embed.weight.device.type == "cpu" and loaded.scale.device.type == "cpu"
    assert torch.equal(run(loaded, ids), run(model, ids))


def test_save_and_load_files(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(2, 5, 8)
    model = AttentionNet().eval()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    next(g for g in graph.get_all_groups() if len(g.units) == 4).prune([0, 3])
    tp.save(model, tmp_path / "pruned.pth")
    loaded = tp.load(tmp_path / "pruned.pth", AttentionNet).eval()
    assert loaded.mha.num_heads == 2 and torch.equal(run(loaded, x), run(model, x))
    again = tp.load(tmp_path / "pruned.pth", AttentionNet().eval())
    assert torch.equal(run(again, x), run(model, x))


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="structprune.state_dict"):
        tp.load_state_dict(Tied(), Tied().state_dict())
    saved = roundtrip(nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)))
    with pytest.raises(KeyError, match="'1'"):
        tp.load_state_dict(nn.Sequential(nn.Linear(2, 2)), saved)
