"""torchvision suite: every model of ``torchvision.models.list_models()``, random weights, small inputs.

Classification models run at 128 px where they accept it; models whose code fixes the input
size (ViT's position embedding, MaxViT's windows, MViT, S3D's final pooling) get the smallest
size they accept.  Quantizable models are built as float models (``quantize=False``) and listed
in their own group.
"""

from __future__ import annotations

import torch
from torchvision import models

from benchmarks.suites import Case

IMAGE = 128
DETECTION_KWARGS = {"weights_backbone": None, "min_size": IMAGE, "max_size": IMAGE}
FIXED_DETECTION_SIZE = {"ssd300_vgg16": 300, "ssdlite320_mobilenet_v3_large": 320}
VIDEO_CLIP = (4, 64, 64)  # frames, height, width
SPECIAL_CLASSIFICATION = {
    "vit_h_14": ({"image_size": 112}, 112),
    "maxvit_t": ({}, 224),
}


def _group_of(name: str) -> str:
    for group, module in (("quantized", models.quantization), ("detection", models.detection),
                          ("segmentation", models.segmentation), ("video", models.video),
                          ("optical_flow", models.optical_flow)):
        if name in models.list_models(module=module):
            return group
    return "classification"


def _image(size: int) -> torch.Tensor:
    return torch.rand(1, 3, size, size)


def _classification(name: str, quantized: bool = False):
    kwargs, size = SPECIAL_CLASSIFICATION.get(name, ({}, IMAGE))
    if name.startswith("vit_") and not kwargs:
        kwargs = {"image_size": IMAGE}
    if name in ("googlenet", "inception_v3", "quantized_googlenet", "quantized_inception_v3"):
        kwargs = {"aux_logits": False, "init_weights": True}
    if quantized:
        kwargs = {**kwargs, "quantize": False}
    return lambda: (models.get_model(name, weights=None, **kwargs), _image(size))


def _detection(name: str):
    size = FIXED_DETECTION_SIZE.get(name, IMAGE)
    kwargs = {"weights_backbone": None} if name in FIXED_DETECTION_SIZE else DETECTION_KWARGS
    return lambda: (models.get_model(name, weights=None, **kwargs), ([torch.rand(3, size, size)],))


def _segmentation(name: str):
    return lambda: (models.get_model(name, weights=None, weights_backbone=None), _image(IMAGE))


def _video(name: str):
    frames, h, w = VIDEO_CLIP
    if name.startswith("mvit") or name == "s3d":
        # MViT's position embeddings and S3D's final AvgPool3d(2, 7, 7) fix a 16x224x224 clip
        frames, h, w = 16, 224, 224
    return lambda: (models.get_model(name, weights=None), torch.rand(1, 3, frames, h, w))


def _optical_flow(name: str):
    return lambda: (models.get_model(name, weights=None), (_image(IMAGE), _image(IMAGE)))


def _flow_forward(model, inputs):
    return model(*inputs, num_flow_updates=2)


def cases() -> list[Case]:
    """One case per model name of ``torchvision.models.list_models()``."""
    found = []
    for name in models.list_models():
        group = _group_of(name)
        if group == "detection":
            found.append(Case(name, _detection(name), group, batch_free=True))
        elif group == "segmentation":
            found.append(Case(name, _segmentation(name), group))
        elif group == "video":
            found.append(Case(name, _video(name), group))
        elif group == "optical_flow":
            found.append(Case(name, _optical_flow(name), group, forward_fn=_flow_forward))
        else:
            found.append(Case(name, _classification(name, group == "quantized"), group))
    return found
