"""Detection MACs are counted at a fixed number of boxes, and the user's thresholds come back."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torchvision.models import get_model

from benchmarks.check import Result, prune_case
from benchmarks.detections import detection_count, saturated_detections
from benchmarks.report import DETECTION_NOTE, markdown_table
from benchmarks.suites import find

SMALL_DETECTOR = "fasterrcnn_mobilenet_v3_large_320_fpn"


def _thresholds(model) -> list[tuple[str, float]]:
    return [(f"{name}.{attr}", getattr(m, attr)) for name, m in model.named_modules()
            for attr in ("score_thresh", "nms_thresh") if isinstance(getattr(m, attr, None), float)]


def test_saturation_sets_and_restores_every_threshold():
    model = get_model(SMALL_DETECTOR, weights=None, weights_backbone=None)
    original = _thresholds(model)
    with saturated_detections(model) as changed:
        assert changed == len(original) == 4  # rpn and roi_heads, score and nms each
        assert {value for _, value in _thresholds(model)} <= {0.0, 1.0}
    assert _thresholds(model) == original


def test_saturation_restores_after_an_error_and_ignores_classifiers():
    model = get_model(SMALL_DETECTOR, weights=None, weights_backbone=None)
    original = _thresholds(model)
    with pytest.raises(RuntimeError), saturated_detections(model):
        raise RuntimeError("boom")
    assert _thresholds(model) == original
    with saturated_detections(torch.nn.Linear(2, 2)) as changed:
        assert changed == 0


def test_detection_count_reads_torchvision_outputs_only():
    outputs = [{"boxes": torch.zeros(3, 4)}, {"boxes": torch.zeros(5, 4)}]
    assert detection_count(outputs) == 8
    assert detection_count(({}, outputs)) == 8
    assert detection_count(torch.zeros(2, 10)) is None


def test_pruned_detector_is_counted_at_the_same_detections_and_keeps_its_thresholds():
    case = find("torchvision", SMALL_DETECTOR)
    result = Result(case.name, case.group)
    model, _ = prune_case(case, result)
    assert result.reason == ""
    assert result.detections_before == result.detections_after == model.roi_heads.detections_per_img
    assert result.macs_after < result.macs_before
    assert (model.roi_heads.score_thresh, model.roi_heads.nms_thresh) == (0.05, 0.5)


def test_table_explains_detection_counting_only_for_detectors():
    row = {"name": "a", "group": "g", "ok": True, "reason": ""}
    assert DETECTION_NOTE not in markdown_table("s", [row])
    assert DETECTION_NOTE in markdown_table("s", [dataclasses.replace(Result("d"), detections_before=1).to_dict()])
