"""Torch-Pruning's input conventions and eval-mode tracing."""

from __future__ import annotations

from typing import List

import pytest
import torch
import torch.nn as nn

import structprune as tp
from structprune.trace.calling import SPREAD, WHOLE, call_style, run_forward


class ListModel(nn.Module):
    """Takes a list of 3-D images as one argument (a torchvision detector's convention)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 2, 1)
        self.calls: list[int] = []

    def forward(self, images: List[torch.Tensor]):
        self.calls.append(1)
        for image in images:
            if image.dim() != 3:
                raise ValueError("images is expected to be a list of 3d tensors")
        return [self.head(torch.relu(self.conv(image[None]))) for image in images]


class UnannotatedListModel(ListModel):
    def forward(self, images, targets=None):  # binds one tensor too: only the fallback finds out
        return super().forward(images)


def test_list_taken_as_one_argument_runs_once():
    model = ListModel()
    inputs = [torch.rand(3, 8, 8)]
    assert call_style(model, inputs) == WHOLE
    DG = tp.DependencyGraph().build_dependency(model, example_inputs=inputs)
    assert len(model.calls) == 1
    group = DG.get_pruning_group(model.conv, tp.prune_conv_out_channels, idxs=[0, 5])
    group.prune()
    assert model.conv.out_channels == 6 and model.head.in_channels == 6
    assert model(inputs)[0].shape == (1, 2, 8, 8)


def test_spreading_that_fails_falls_back_to_the_whole_list():
    model = UnannotatedListModel()
    inputs = [torch.rand(3, 8, 8)]
    assert call_style(model, inputs) == SPREAD
    DG = tp.DependencyGraph().build_dependency(model, example_inputs=inputs)
    assert len(list(DG.get_all_groups())) == 1
    assert run_forward(model, inputs)[0].shape == (1, 2, 8, 8)


def test_tuple_is_spread_and_dict_is_keywords():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.out = nn.Linear(4, 6), nn.Linear(5, 6), nn.Linear(6, 2)

        def forward(self, x, y):
            return self.out(self.a(x) + self.b(y))

    model = Two()
    x, y = torch.randn(2, 4), torch.randn(2, 5)
    for inputs in [(x, y), [x, y], {"x": x, "y": y}]:
        DG = tp.DependencyGraph().build_dependency(model, example_inputs=inputs)
        group = DG.get_pruning_group(model.a, tp.prune_linear_out_channels, idxs=[1])
        assert {dep.target.module for dep, _ in group} >= {model.a, model.b, model.out}


def test_bad_inputs_name_both_calls_and_the_remedy():
    model = UnannotatedListModel()
    with pytest.raises(RuntimeError, match="forward_fn"):
        tp.DependencyGraph().build_dependency(model, example_inputs=[torch.rand(8, 8)])


class BNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.bn = nn.BatchNorm1d(8)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(self.drop(torch.relu(self.bn(self.fc1(x)))))


def test_training_model_with_batch_one_traces_in_eval_mode_and_keeps_its_flags():
    model = BNNet().train()
    model.drop.eval()  # a mixed state must come back exactly
    stats = model.bn.running_mean.clone()
    DG = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, 4))
    assert model.training and model.fc1.training and model.bn.training and not model.drop.training
    assert torch.equal(model.bn.running_mean, stats)  # eval mode: running stats untouched
    DG.get_pruning_group(model.fc1, tp.prune_linear_out_channels, idxs=[0, 1]).prune()
    assert model.bn.num_features == 6 and model(torch.randn(2, 4)).shape == (2, 3)


def test_eval_model_stays_in_eval():
    model = BNNet().eval()
    tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, 4))
    assert not any(m.training for m in model.modules())


@pytest.mark.slow
def test_torchvision_detector_with_torch_pruning_inputs():
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    torch.manual_seed(0)
    model = fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None).eval()
    inputs = [torch.rand(3, 64, 64)]
    DG = tp.DependencyGraph().build_dependency(model, example_inputs=inputs)
    groups = list(DG.get_all_groups())
    assert groups
    groups[0].prune([0])
    with torch.no_grad():
        out = model(inputs)
    assert isinstance(out, list) and set(out[0]) == {"boxes", "labels", "scores"}
