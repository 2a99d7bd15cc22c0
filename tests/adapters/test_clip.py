"""CLIP adapter: text/vision sub-configs follow the pruned towers; from_pretrained gives the same outputs."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

import structprune as tp  # noqa: E402
from structprune.adapters import NotExpressibleError, save_pretrained_pruned, sync_config  # noqa: E402

TOWER = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)


def build():
    torch.manual_seed(0)
    config = transformers.CLIPConfig(text_config=dict(TOWER, vocab_size=64, max_position_embeddings=16),
                                     vision_config=dict(TOWER, image_size=16, patch_size=8), projection_dim=16)
    return transformers.CLIPModel(config).eval()


def inputs():
    torch.manual_seed(1)
    return {"input_ids": torch.randint(3, 64, (2, 7)), "pixel_values": torch.rand(1, 3, 16, 16)}


def test_pruned_clip_round_trips(tmp_path):
    model = build()
    tp.pruner.MagnitudePruner(model, inputs(), pruning_ratio=0.5, output_transform=lambda out: out.logits_per_image,
                              ignored_layers=[model.text_model.embeddings, model.vision_model.embeddings]).step()
    save_pretrained_pruned(model, tmp_path)
    reloaded = transformers.AutoModel.from_pretrained(tmp_path).eval()
    assert type(reloaded) is transformers.CLIPModel
    assert reloaded.config.text_config.intermediate_size == reloaded.config.vision_config.intermediate_size == 32
    with torch.no_grad():
        expected, got = model(**inputs()), reloaded(**inputs())
    for key in ("logits_per_image", "text_embeds", "image_embeds"):
        assert (expected[key] - got[key]).abs().max().item() < 1e-5, key


def test_pruned_hidden_size_is_refused(tmp_path):
    model = build()
    tp.pruner.MagnitudePruner(model, inputs(), pruning_ratio=0.5,
                              output_transform=lambda out: out.logits_per_image).step()
    with pytest.raises(NotExpressibleError, match="keeps 4 heads x 8 = 32 in hidden size 16"):
        save_pretrained_pruned(model, tmp_path)
    assert not (tmp_path / "config.json").exists()


def test_text_tower_alone(tmp_path):
    torch.manual_seed(0)
    model = transformers.CLIPTextModel(transformers.CLIPTextConfig(**TOWER, vocab_size=64,
                                                                   max_position_embeddings=16)).eval()
    ids = {"input_ids": torch.randint(3, 64, (2, 7))}
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=ids)
    for layer in model.encoder.layers:
        graph.get_pruning_group(layer.mlp.fc1, tp.prune_linear_out_channels, idxs=list(range(16))).prune()
    save_pretrained_pruned(model, tmp_path)
    reloaded = transformers.CLIPTextModel.from_pretrained(tmp_path).eval()
    assert reloaded.config.intermediate_size == 48
    with torch.no_grad():
        diff = (model(**ids).last_hidden_state - reloaded(**ids).last_hidden_state).abs().max().item()
    assert diff < 1e-5


def test_non_uniform_vision_ffn_is_refused():
    model = build()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=inputs())
    graph.get_pruning_group(model.vision_model.encoder.layers[0].mlp.fc1, tp.prune_linear_out_channels,
                            idxs=[0, 1]).prune()
    with pytest.raises(NotExpressibleError, match="vision_model.encoder.layers.0.mlp: 62"):
        sync_config(model)


def test_unpruned_config_is_unchanged():
    model = build()
    before = model.config.to_dict()
    sync_config(model)
    assert model.config.to_dict() == before
