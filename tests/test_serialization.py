"""tp.serialization: Torch-Pruning's save/load recipe, loading with weights_only=True."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn as nn

import structprune as tp


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.fc = nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


@pytest.fixture
def pruned():
    torch.manual_seed(0)
    model, x = Net().eval(), torch.randn(2, 3, 8, 8)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    graph.get_pruning_group(model.conv, tp.prune_conv_out_channels, idxs=[1, 4, 6]).prune()
    return model, x


def test_torch_pruning_recipe_round_trip(pruned, tmp_path):
    model, x = pruned
    path = tmp_path / "pruned.pth"
    tp.serialization.save(tp.serialization.state_dict(model), path)       # tp.save(tp.state_dict(model), ...)
    loaded = tp.serialization.load_state_dict(Net().eval(), tp.serialization.load(path))
    assert loaded.conv.out_channels == 5 and loaded.bn.num_features == 5 and loaded.fc.in_features == 5
    assert torch.equal(loaded(x), model(x))
    torch.load(path, weights_only=True)  # plain data, unlike Torch-Pruning's pickled module dicts


def test_model_and_builder_forms_and_positional_map_location(pruned):
    model, x = pruned
    buffer = io.BytesIO()
    tp.save(model, buffer)
    buffer.seek(0)
    assert torch.equal(tp.load(buffer, Net).eval()(x), model(x))
    buffer.seek(0)
    data = tp.load(buffer, "cpu")  # torch.load's positional map_location
    assert torch.equal(tp.load_state_dict(Net().eval(), data)(x), model(x))


def test_other_objects_are_saved_as_torch_save_does(tmp_path):
    tp.save({"step": 3, "w": torch.ones(2)}, tmp_path / "x.pth", pickle_protocol=2)
    assert tp.load(tmp_path / "x.pth", map_location="cpu")["step"] == 3
    assert tp.serialization.DEFAULT_PROTOCOL == torch.serialization.DEFAULT_PROTOCOL
