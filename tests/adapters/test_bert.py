"""BERT adapter: pruned shapes -> BertConfig -> save_pretrained -> AutoModel.from_pretrained, identical outputs."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

import structprune as tp  # noqa: E402
from structprune.adapters import (NotExpressibleError, ModelAdapter, adapter_for, max_reload_difference,  # noqa: E402
                                  register_adapter, registered_adapters, save_pretrained_pruned, sync_config)
from structprune.adapters.bert import BertAdapter  # noqa: E402


def tiny_bert():
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=64, max_position_embeddings=40)
    return transformers.BertModel(config).eval()


def inputs(length: int = 12):
    torch.manual_seed(1)
    mask = torch.ones(2, length, dtype=torch.long)
    mask[1, length // 2:] = 0
    return {"input_ids": torch.randint(1, 99, (2, length)), "attention_mask": mask}


def prune(model, **options):
    options.setdefault("ignored_layers", [model.pooler])
    tp.pruner.MagnitudePruner(model, inputs(), output_transform=lambda out: out.last_hidden_state, **options).step()


def test_ffn_pruning_round_trips_through_from_pretrained(tmp_path):
    model = tiny_bert()
    prune(model, pruning_ratio=0.5)
    assert [layer.intermediate.dense.out_features for layer in model.encoder.layer] == [32, 32]
    save_pretrained_pruned(model, tmp_path)
    reloaded = transformers.AutoModel.from_pretrained(tmp_path)
    assert type(reloaded) is transformers.BertModel and reloaded.config.intermediate_size == 32
    assert max_reload_difference(model, reloaded, inputs()) < 1e-5
    with torch.no_grad():
        assert torch.allclose(model(**inputs()).pooler_output, reloaded(**inputs()).pooler_output, atol=1e-5)


def test_unpruned_model_gives_the_same_config():
    model = tiny_bert()
    before = model.config.to_dict()
    sync_config(model)
    assert model.config.to_dict() == before


def test_sync_config_reads_shapes():
    model = tiny_bert()
    prune(model, pruning_ratio=0.25)
    fields = BertAdapter().config_fields(model)
    assert fields == {"hidden_size": 32, "num_attention_heads": 4, "intermediate_size": 48, "num_hidden_layers": 2}


def test_non_uniform_ffn_is_refused(tmp_path):
    model = tiny_bert()
    prune(model, pruning_ratio_dict={model.encoder.layer[0].intermediate: 0.5}, pruning_ratio=0.0)
    with pytest.raises(NotExpressibleError, match="intermediate_size.*encoder.layer.0.intermediate.dense: 32"):
        save_pretrained_pruned(model, tmp_path)
    assert not (tmp_path / "config.json").exists()


def test_removing_heads_is_refused():
    model = tiny_bert()
    prune(model, pruning_ratio=0.0, prune_num_heads=True, head_pruning_ratio=0.5, prune_head_dims=False,
          keep_config_expressible=False)
    assert model.encoder.layer[0].attention.self.query.out_features == 16
    with pytest.raises(NotExpressibleError, match="2 heads x 8 = 16 in hidden size 32"):
        sync_config(model)


def test_default_pruner_keeps_what_bertconfig_cannot_express(tmp_path, caplog):
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=64, max_position_embeddings=40, num_labels=3)
    model = transformers.BertForSequenceClassification(config).eval()
    pruner = tp.pruner.MagnitudePruner(model, inputs(), pruning_ratio=0.5, global_pruning=True)
    pruner.step()
    assert model.bert.embeddings.word_embeddings.embedding_dim == 32  # hidden size kept
    assert model.bert.pooler.dense.out_features == 32  # no config field sizes the pooler
    assert model.bert.encoder.layer[0].attention.self.query.out_features == 32  # heads kept
    assert [layer.intermediate.dense.out_features for layer in model.bert.encoder.layer] == [32, 32]  # uniform
    notes = " ".join(pruner.config_notes)
    assert "bert.embeddings.word_embeddings kept" in notes and "head dims kept" in notes
    assert "global ranking off" in notes and "keep_config_expressible=False" in caplog.text
    save_pretrained_pruned(model, tmp_path)
    reloaded = transformers.BertForSequenceClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.allclose(model(**inputs()).logits, reloaded(**inputs()).logits, atol=1e-5)


def test_bert_half_as_wide_with_half_the_heads_reloads(tmp_path):
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=64, max_position_embeddings=40, num_labels=3)
    model = transformers.BertForSequenceClassification(config).eval()
    params = sum(p.numel() for p in model.bert.encoder.parameters())
    tp.pruner.MagnitudePruner(model, inputs(), pruning_ratio=0.5, prune_num_heads=True, head_pruning_ratio=0.5).step()
    assert sum(p.numel() for p in model.bert.encoder.parameters()) < params * 0.3
    save_pretrained_pruned(model, tmp_path)
    reloaded = transformers.BertForSequenceClassification.from_pretrained(tmp_path).eval()
    assert (reloaded.config.hidden_size, reloaded.config.num_attention_heads) == (16, 2)
    assert reloaded.config.intermediate_size == 32
    with torch.no_grad():
        assert torch.allclose(model(**inputs()).logits, reloaded(**inputs()).logits, atol=1e-5)


def test_opting_out_prunes_the_hidden_size_and_saving_refuses():
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=64, max_position_embeddings=40, num_labels=3)
    model = transformers.BertForSequenceClassification(config).eval()
    tp.pruner.MagnitudePruner(model, inputs(), pruning_ratio=0.5, keep_config_expressible=False).step()
    assert model.bert.embeddings.word_embeddings.embedding_dim == 16
    with pytest.raises(NotExpressibleError, match="hidden"):
        sync_config(model)


def test_task_heads_use_the_base_model(tmp_path):
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=64, max_position_embeddings=40, num_labels=3)
    model = transformers.BertForSequenceClassification(config).eval()
    tp.pruner.MagnitudePruner(model, inputs(), pruning_ratio=0.5, output_transform=lambda out: out.logits,
                              ignored_layers=[model.classifier, model.bert.pooler, model.bert.embeddings]).step()
    assert model.bert.encoder.layer[0].intermediate.dense.out_features == 32
    save_pretrained_pruned(model, tmp_path)
    reloaded = transformers.BertForSequenceClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.allclose(model(**inputs()).logits, reloaded(**inputs()).logits, atol=1e-5)


def test_registry_lookup_and_registration():
    assert isinstance(adapter_for(tiny_bert()), BertAdapter)
    with pytest.raises(TypeError, match="no `config`"):
        adapter_for(torch.nn.Linear(2, 2))

    class ToyConfig(transformers.PretrainedConfig):
        model_type = "toy-structprune"

    class ToyModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.config, self.fc = ToyConfig(width=4), torch.nn.Linear(3, 4)

    with pytest.raises(NotExpressibleError, match="no model adapter for ToyConfig"):
        adapter_for(ToyModel())

    @register_adapter(ToyConfig)
    class ToyAdapter(ModelAdapter):
        def config_fields(self, model):
            return {"width": model.fc.out_features}

    try:
        model = ToyModel()
        model.fc = torch.nn.Linear(3, 2)
        assert sync_config(model).width == 2
    finally:
        from structprune.adapters import base
        base._ADAPTERS.pop(ToyConfig)
    assert ToyConfig not in registered_adapters()
