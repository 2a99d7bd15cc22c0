"""RoBERTa, DistilBERT, ALBERT, ViT adapters: prune -> save_pretrained -> from_pretrained, identical outputs."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

import structprune as tp  # noqa: E402
from structprune.adapters import NotExpressibleError, save_pretrained_pruned, sync_config  # noqa: E402

TEXT = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=40, num_labels=3)


def build(name: str):
    torch.manual_seed(0)
    if name == "roberta":
        return transformers.RobertaForSequenceClassification(transformers.RobertaConfig(**TEXT, pad_token_id=1))
    if name == "distilbert":
        return transformers.DistilBertForSequenceClassification(transformers.DistilBertConfig(
            vocab_size=64, dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=40, num_labels=3))
    if name == "albert":
        return transformers.AlbertForSequenceClassification(transformers.AlbertConfig(**TEXT, embedding_size=16))
    return transformers.ViTForImageClassification(transformers.ViTConfig(
        image_size=16, patch_size=4, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, num_labels=3))


def inputs(name: str):
    torch.manual_seed(1)
    if name == "vit":
        return {"pixel_values": torch.rand(2, 3, 16, 16)}
    return {"input_ids": torch.randint(3, 64, (2, 9))}


def ffn_ups(model, name: str):
    if name == "roberta":
        return [layer.intermediate.dense for layer in model.roberta.encoder.layer]
    if name == "distilbert":
        return [layer.ffn.lin1 for layer in model.distilbert.transformer.layer]
    return [layer.ffn for layer in model.albert.encoder.albert_layer_groups[0].albert_layers]


def prune_ffn(model, name: str, keep: int = 40):
    """Remove the FFN neurons from ``keep`` on in every layer (the hidden size stays)."""
    graph = tp.DependencyGraph().build_dependency(model.eval(), example_inputs=inputs(name))
    for up in ffn_ups(model, name):
        graph.get_pruning_group(up, tp.prune_linear_out_channels, idxs=list(range(keep, 64))).prune()


def assert_round_trip(model, name, folder):
    save_pretrained_pruned(model, folder)
    auto = transformers.AutoModelForImageClassification if name == "vit" else \
        transformers.AutoModelForSequenceClassification
    reloaded = auto.from_pretrained(folder).eval()
    assert type(reloaded) is type(model)
    with torch.no_grad():
        expected, got = model.eval()(**inputs(name)).logits, reloaded(**inputs(name)).logits
    assert (got - expected).abs().max().item() < 1e-5
    return reloaded.config


@pytest.mark.parametrize("name,field", [("roberta", "intermediate_size"), ("distilbert", "hidden_dim"),
                                        ("albert", "intermediate_size")])
def test_ffn_pruning_round_trips(name, field, tmp_path):
    model = build(name)
    prune_ffn(model, name)
    assert getattr(assert_round_trip(model, name, tmp_path), field) == 40


@pytest.mark.parametrize("name", ["roberta", "distilbert", "albert"])
def test_pruned_hidden_size_is_refused(name, tmp_path):
    model = build(name).eval()
    tp.pruner.MagnitudePruner(model, inputs(name), pruning_ratio=0.5, output_transform=lambda out: out.logits,
                              keep_config_expressible=False, prune_head_dims=False).step()
    with pytest.raises(NotExpressibleError, match=r"keeps 4 heads x 8 = 32 in hidden size 16"):
        save_pretrained_pruned(model, tmp_path)
    assert not (tmp_path / "config.json").exists()


@pytest.mark.parametrize("name", ["roberta", "distilbert", "albert"])
def test_default_pruner_prunes_only_what_the_config_expresses(name, tmp_path):
    model = build(name).eval()
    params = sum(p.numel() for p in model.parameters())
    tp.pruner.MagnitudePruner(model, inputs(name), pruning_ratio=0.5, output_transform=lambda out: out.logits).step()
    assert sum(p.numel() for p in model.parameters()) < params
    assert_round_trip(model, name, tmp_path)


@pytest.mark.parametrize("name", ["roberta", "distilbert", "albert"])
def test_asking_for_heads_prunes_the_hidden_size_with_them(name, tmp_path):
    model = build(name).eval()
    pruner = tp.pruner.MagnitudePruner(model, inputs(name), pruning_ratio=0.5, prune_num_heads=True,
                                       head_pruning_ratio=0.5, output_transform=lambda out: out.logits)
    pruner.step()
    assert any(note.startswith("hidden size follows the heads: 2 of 4") for note in pruner.config_notes)
    config = assert_round_trip(model, name, tmp_path)
    assert (config.hidden_size, config.num_attention_heads) == (16, 2)


def test_vit_hidden_head_dims_and_ffn_pruning_round_trips(tmp_path):
    model = build("vit").eval()
    tp.pruner.MagnitudePruner(model, inputs("vit"), pruning_ratio=0.5, output_transform=lambda out: out.logits).step()
    config = assert_round_trip(model, "vit", tmp_path)  # the head_dim ** -0.5 scaling is folded into q_proj
    assert (config.hidden_size, config.num_attention_heads, config.head_dim, config.intermediate_size) == (16, 4, 4, 32)


def test_non_uniform_ffn_is_refused():
    model = build("distilbert")
    graph = tp.DependencyGraph().build_dependency(model.eval(), example_inputs=inputs("distilbert"))
    graph.get_pruning_group(model.distilbert.transformer.layer[0].ffn.lin1, tp.prune_linear_out_channels,
                            idxs=[0, 1]).prune()
    with pytest.raises(NotExpressibleError, match="hidden_dim.*transformer.layer.0.ffn: 62, transformer.layer.1.ffn: 64"):
        sync_config(model)


@pytest.mark.parametrize("name", ["roberta", "distilbert", "albert", "vit"])
def test_unpruned_config_is_unchanged(name):
    model = build(name)
    before = model.config.to_dict()
    sync_config(model)
    assert model.config.to_dict() == before


def tiny_swin():
    torch.manual_seed(0)
    config = transformers.SwinConfig(image_size=16, patch_size=2, embed_dim=8, depths=[1, 1], num_heads=[2, 4],
                                     window_size=4, num_labels=3)
    return transformers.SwinForImageClassification(config).eval()


def test_swin_ffn_pruning_round_trips(tmp_path):
    model = tiny_swin()
    pixels = {"pixel_values": torch.rand(1, 3, 16, 16)}
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=pixels)
    for stage in model.swin.encoder.layers:  # mlp_ratio 4 -> 3 in every block
        fc1 = stage.blocks[0].mlp.fc1
        graph.get_pruning_group(fc1, tp.prune_linear_out_channels, idxs=list(range(fc1.out_features // 4))).prune()
    save_pretrained_pruned(model, tmp_path)
    reloaded = transformers.AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert reloaded.config.mlp_ratio == 3.0
    with torch.no_grad():
        assert (model(**pixels).logits - reloaded(**pixels).logits).abs().max().item() < 1e-5


def test_swin_speedup_target_keeps_one_mlp_ratio(tmp_path):
    model = tiny_swin()  # stage FFNs of 32 and 64 neurons: a target search moves them by the same fraction
    pixels = {"pixel_values": torch.rand(1, 3, 16, 16)}
    tp.pruner.MagnitudePruner(model, pixels, speedup=2.0, output_transform=lambda out: out.logits).step()
    widths = [stage.blocks[0].mlp.fc1.out_features for stage in model.swin.encoder.layers]
    assert widths[0] < 32 and widths[1] == 2 * widths[0]
    save_pretrained_pruned(model, tmp_path)
    reloaded = transformers.AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert reloaded.config.mlp_ratio == widths[0] / 8
    with torch.no_grad():
        assert (model(**pixels).logits - reloaded(**pixels).logits).abs().max().item() < 1e-5


def test_swin_pruned_stage_width_is_refused():
    torch.manual_seed(0)
    model = transformers.SwinForImageClassification(transformers.SwinConfig(
        image_size=32, patch_size=2, embed_dim=16, depths=[1, 1], num_heads=[2, 4], window_size=4)).eval()
    tp.pruner.MagnitudePruner(model, {"pixel_values": torch.rand(1, 3, 32, 32)}, pruning_ratio=0.5,
                              output_transform=lambda out: out.logits, keep_config_expressible=False).step()
    # the head dims go as plain channels too (Swin's heads are pinned): either refusal comes first
    with pytest.raises(NotExpressibleError, match=r"stage encoder.layers.1 is 16 wide.*embed_dim \* 2 \*\* 1 = 32"
                                                  r"|had its head dims pruned"):
        sync_config(model)
