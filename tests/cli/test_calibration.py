"""``structprune.cli.calibration``: calibration data and the gradients taylor / hessian score with."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from PIL import Image

import structprune as tp
from structprune.cli.calibration import accumulate_gradients, calibration_batches, output_energy
from structprune.cli.errors import CliError
from structprune.cli.models import LoadedModel


def loaded_linear(tokens: bool = False) -> LoadedModel:
    torch.manual_seed(0)
    return LoadedModel("test", nn.Linear(4, 3, bias=False), (2, 4), tokens=tokens, vocab_size=50)


def test_tensor_file_is_split_into_batches(tmp_path):
    torch.save(torch.arange(5 * 4).view(5, 4).float(), tmp_path / "x.pt")
    batches = calibration_batches(str(tmp_path / "x.pt"), loaded_linear(), (2, 4), count=8)
    assert [b.shape[0] for b in batches] == [2, 2, 1] and torch.equal(batches[2], torch.arange(16, 20.).view(1, 4))
    assert len(calibration_batches(str(tmp_path / "x.pt"), loaded_linear(), (2, 4), count=2)) == 2


def test_token_files_become_input_ids(tmp_path):
    torch.save(torch.randint(0, 50, (4, 7)), tmp_path / "ids.pt")
    batches = calibration_batches(str(tmp_path / "ids.pt"), loaded_linear(tokens=True), (2, 7), count=4)
    assert all(set(b) == {"input_ids"} and b["input_ids"].dtype == torch.long for b in batches)


def test_images_are_resized_and_normalised(tmp_path):
    Image.new("RGB", (30, 20), color=(255, 0, 128)).save(tmp_path / "a.png")
    Image.new("RGB", (10, 10), color=(0, 0, 0)).save(tmp_path / "b.jpg")
    (tmp_path / "notes.txt").write_text("ignored")
    (batch,) = calibration_batches(str(tmp_path), loaded_linear(), (2, 3, 8, 6), count=4)
    assert batch.shape == (2, 3, 8, 6)
    red = (1.0 - 0.485) / 0.229
    assert torch.allclose(batch[0, 0], torch.full((8, 6), red)) and float(batch[1].max()) < 0


def test_bad_calibration_sources(tmp_path):
    with pytest.raises(CliError, match="no images"):
        calibration_batches(str(tmp_path), loaded_linear(), (1, 3, 8, 8), count=1)
    torch.save({"a": 1}, tmp_path / "d.pt")
    with pytest.raises(CliError, match="expected one tensor"):
        calibration_batches(str(tmp_path / "d.pt"), loaded_linear(), (1, 4), count=1)


def test_taylor_gradients_are_those_of_the_output_energy():
    model, x = loaded_linear().model, torch.randn(2, 4)
    accumulate_gradients(model, [x], tp.importance.TaylorImportance(), "taylor", iter)
    expected = torch.autograd.grad(output_energy(model(x)), model.weight)[0]
    assert torch.allclose(model.weight.grad, expected)


def test_hessian_estimate_approaches_the_gauss_newton_diagonal():
    # f(x) = W x: d<f, r>/dW = r x^T, so E[(r x^T)^2] = x^2 for every output row (J^T J's diagonal)
    model, x = loaded_linear().model, torch.tensor([[1.0, -2.0, 0.5, 3.0]])
    imp = tp.importance.HessianImportance()
    torch.manual_seed(1)
    accumulate_gradients(model, [x] * 4000, imp, "hessian", iter)
    estimate = imp._sum[(id(model), "weight")] / imp._count[(id(model), "weight")]
    assert torch.allclose(estimate, x.pow(2).expand(3, 4), rtol=0.1)


def llama_dir_with_tokenizer(path):
    """A tiny random Llama saved with a word-level tokenizer over the words of ``TEXTS``."""
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    words = sorted({w for line in TEXTS for w in line.split()})
    vocab = {"<pad>": 0, "<unk>": 1, **{w: i + 2 for i, w in enumerate(words)}}
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    transformers.PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>").save_pretrained(path)
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, head_dim=8)
    transformers.LlamaForCausalLM(config).save_pretrained(path)
    return path


TEXTS = ["a member of the genus Canis that has been domesticated by man since prehistoric times",
         "a large vessel that carries passengers or freight over the sea",
         "the act of moving the body quickly on foot", "a written work or composition that has been published"]


def test_text_file_calibrates_the_activation_criterion(cli, tmp_path):
    model_dir = llama_dir_with_tokenizer(tmp_path / "llama")
    glosses = tmp_path / "glosses.txt"
    glosses.write_text("\n".join(TEXTS) + "\n")
    run = cli("prune", f"hf:{model_dir}", "--calib", glosses, "--importance", "activation", "--ratio", "0.5",
              "--input-shape", "2,12", "--out", tmp_path / "p.pt", "--json", "--runs", "1", "--warmup", "0", "--threads", "1")
    assert run.code == 0, run.stderr
    after = {layer["name"]: layer["out_after"] for layer in run.json["layers"]}
    assert after["layers.0.mlp.gate_proj"] == 32
    assert run.json["after"]["params"] < run.json["before"]["params"]


def test_text_file_needs_a_tokenizer(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(vocab_size=16, hidden_size=8, intermediate_size=8, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=1)
    transformers.LlamaModel(config).save_pretrained(tmp_path / "m")
    (tmp_path / "t.txt").write_text("some text\n")
    loaded = LoadedModel(f"hf:{tmp_path / 'm'}", nn.Identity(), (1, 8), tokens=True)
    with pytest.raises(CliError, match="no tokenizer in"):
        calibration_batches(str(tmp_path / "t.txt"), loaded, (1, 8), 2)
