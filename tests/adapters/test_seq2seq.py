"""BART, Whisper, T5 adapters: prune -> save_pretrained -> from_pretrained, identical logits."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

import structprune as tp  # noqa: E402
from structprune.adapters import NotExpressibleError, save_pretrained_pruned, sync_config  # noqa: E402

SEQ2SEQ = dict(vocab_size=64, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
               decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64)


def build(name: str):
    torch.manual_seed(0)
    if name == "bart":
        model = transformers.BartForConditionalGeneration(transformers.BartConfig(**SEQ2SEQ, max_position_embeddings=32))
    elif name == "whisper":
        model = transformers.WhisperForConditionalGeneration(transformers.WhisperConfig(
            **SEQ2SEQ, num_mel_bins=16, max_source_positions=16, max_target_positions=32, decoder_start_token_id=1,
            pad_token_id=0, bos_token_id=1, eos_token_id=2, suppress_tokens=[], begin_suppress_tokens=[]))
    else:
        model = transformers.T5ForConditionalGeneration(transformers.T5Config(
            vocab_size=64, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, decoder_start_token_id=0))
    model.config._attn_implementation = "eager"
    return model.eval()


def inputs(name: str):
    """Batch 1: with batch 2 BART's mask expand trips an IndexError in structprune/code_sizes.py:51."""
    torch.manual_seed(1)
    source = {"input_features": torch.rand(1, 16, 32)} if name == "whisper" else \
        {"input_ids": torch.randint(3, 64, (1, 7))}
    return {**source, "decoder_input_ids": torch.randint(3, 64, (1, 5))}


def keep_hidden(model, name: str) -> list:
    """Modules whose ignoring keeps the hidden size (so only FFN neurons go)."""
    base = model.model if name != "t5" else model
    if name == "whisper":
        return [base.encoder.conv1, base.encoder.conv2, base.encoder.embed_positions, base.decoder.embed_tokens,
                base.decoder.embed_positions]
    if name == "bart":
        return [base.shared, base.encoder.embed_tokens, base.decoder.embed_tokens]
    return [base.shared, base.encoder.embed_tokens, base.decoder.embed_tokens, model.lm_head]


def prune(model, name, **options):
    tp.pruner.MagnitudePruner(model, inputs(name), pruning_ratio=0.5, output_transform=lambda out: out.logits,
                              **options).step()


def assert_round_trip(model, name, folder):
    save_pretrained_pruned(model, folder)
    auto = transformers.AutoModelForSpeechSeq2Seq if name == "whisper" else transformers.AutoModelForSeq2SeqLM
    reloaded = auto.from_pretrained(folder, attn_implementation="eager").eval()
    assert type(reloaded) is type(model)
    with torch.no_grad():
        expected, got = model(**inputs(name)).logits, reloaded(**inputs(name)).logits
    assert got.shape == expected.shape and (got - expected).abs().max().item() < 1e-5
    return reloaded.config


@pytest.mark.parametrize("name,fields", [("bart", ("encoder_ffn_dim", "decoder_ffn_dim")),
                                         ("whisper", ("encoder_ffn_dim", "decoder_ffn_dim")), ("t5", ("d_ff",))])
def test_ffn_pruning_round_trips(name, fields, tmp_path):
    model = build(name)
    prune(model, name, ignored_layers=keep_hidden(model, name))
    config = assert_round_trip(model, name, tmp_path)
    assert [getattr(config, field) for field in fields] == [32] * len(fields) and config.d_model == 32


def test_whisper_pruned_conv_channels_are_refused(tmp_path):
    model = build("whisper")
    prune(model, "whisper")
    with pytest.raises(NotExpressibleError, match="WhisperConfig"):
        save_pretrained_pruned(model, tmp_path)
    assert not (tmp_path / "config.json").exists()


def test_rebuild_check_names_unsized_channels():
    model = build("whisper")
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=inputs("whisper"))
    graph.get_pruning_group(model.model.encoder.conv1, tp.prune_conv_out_channels, idxs=[0, 1]).prune()
    with pytest.raises(NotExpressibleError, match=r"no config field sizes them.*encoder.conv1.weight: pruned \(30"):
        sync_config(model)


def test_t5_shared_embedding_is_one_d_model(tmp_path):
    model = build("t5")
    prune(model, "t5", keep_config_expressible=False)  # encoder, decoder and LM head share one embedding
    assert model.shared.weight is model.encoder.embed_tokens.weight is model.decoder.embed_tokens.weight
    assert model.shared.weight is model.lm_head.weight and model.shared.embedding_dim == 16
    assert sync_config(model).d_model == 16


def test_t5_default_pruner_keeps_d_model_of_a_tied_lm_head(tmp_path):
    model = build("t5")
    prune(model, "t5")  # the tied head rescales by d_model ** -0.5: the hidden size stays
    assert model.shared.embedding_dim == 32 and model.encoder.block[0].layer[1].DenseReluDense.wi.out_features == 32
    assert_round_trip(model, "t5", tmp_path)


def test_non_uniform_decoder_ffn_is_refused():
    model = build("bart")
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=inputs("bart"))
    graph.get_pruning_group(model.model.decoder.layers[1].fc1, tp.prune_linear_out_channels, idxs=[0]).prune()
    with pytest.raises(NotExpressibleError, match="decoder_ffn_dim.*decoder.layers.0: 64, decoder.layers.1: 63"):
        sync_config(model)


@pytest.mark.parametrize("name", ["bart", "whisper", "t5"])
def test_unpruned_config_is_unchanged(name):
    model = build(name)
    before = model.config.to_dict()
    sync_config(model)
    assert model.config.to_dict() == before
