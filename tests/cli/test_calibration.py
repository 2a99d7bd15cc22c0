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
