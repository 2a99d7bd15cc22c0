"""Count the MACs of a detection model at a fixed, data-independent number of detections.

The region-of-interest heads of torchvision's R-CNN models (box, mask and keypoint heads) run
once per proposal or detection, and how many boxes survive the score threshold and
non-maximum suppression depends on the weights: two models of different widths with random
weights keep different numbers of boxes, so their MACs are not comparable.  While counting,
:func:`saturated_detections` sets every ``score_thresh`` to 0 and every ``nms_thresh`` to 1
(no box is suppressed), so the RPN keeps its ``post_nms_top_n`` proposals and every model
returns its full ``detections_per_img`` boxes; both models are then counted at the same load,
the most the model can do per image.  RetinaNet, FCOS and SSD run their heads once per
feature map and their counts do not change; the thresholds are set there too, for uniformity.
Everything is restored on exit, so the pruned model a user gets keeps its thresholds.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch.nn as nn

SATURATING = {"score_thresh": 0.0, "nms_thresh": 1.0}


@contextmanager
def saturated_detections(model: nn.Module) -> Iterator[int]:
    """Within the block no box is dropped by a score or NMS threshold; yields how many
    thresholds were changed (0 for a model that is not a detector)."""
    saved = []
    for module in model.modules():
        for attr, value in SATURATING.items():
            current = getattr(module, attr, None)
            if isinstance(current, float):
                saved.append((module, attr, current))
                setattr(module, attr, value)
    try:
        yield len(saved)
    finally:
        for module, attr, value in reversed(saved):
            setattr(module, attr, value)


def detection_count(outputs: Any) -> int | None:
    """Total boxes of torchvision detection outputs (a list of dicts with ``"boxes"``), else None."""
    if isinstance(outputs, tuple) and len(outputs) == 2 and isinstance(outputs[1], list):
        outputs = outputs[1]  # torchscripted detectors return (losses, detections)
    if not isinstance(outputs, list) or not all(isinstance(o, dict) and "boxes" in o for o in outputs):
        return None
    return sum(int(o["boxes"].shape[0]) for o in outputs)
