"""Prune one torchvision model by half, the way Torch-Pruning's torchvision example does.

Classifiers, detectors (the image list is the model's one argument), segmentation models (their
dict output goes through ``output_transform``), video models and RAFT optical flow (two images
as keyword inputs). A ``GroupNormPruner`` with ``GroupMagnitudeImportance(p=1)`` removes 50% of
every group in one interactive step; the classifier and the detection/flow heads are ignored.
Random weights, small inputs.

Example::

    python -m benchmarks.peer_examples.torchvision_models --lib structprune --model resnet18
"""

from __future__ import annotations

import argparse

import torch
import torch.nn as nn
from torchvision import models

from benchmarks.peer_examples._common import measure, output_signature, parse_args, report

CLASSIFIERS = ["resnet18", "mobilenet_v3_small", "densenet121", "efficientnet_b0", "convnext_tiny",
               "regnet_y_400mf", "googlenet", "inception_v3", "squeezenet1_1", "mnasnet0_5",
               "shufflenet_v2_x0_5", "vit_b_16", "swin_t"]
DETECTORS = ["fasterrcnn_mobilenet_v3_large_320_fpn", "ssdlite320_mobilenet_v3_large", "fcos_resnet50_fpn"]
SEGMENTERS = ["deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large", "fcn_resnet50"]
VIDEO = ["r3d_18", "r2plus1d_18"]
FLOW = ["raft_small"]
MODELS = CLASSIFIERS + DETECTORS + SEGMENTERS + VIDEO + FLOW


def build(name: str):
    """The model, its example inputs in Torch-Pruning's calling convention, and its output transform."""
    if name in ("googlenet", "inception_v3"):
        model = models.get_model(name, weights=None, aux_logits=False, init_weights=False)
    elif name in SEGMENTERS:
        model = models.get_model(name, weights=None, weights_backbone=None, aux_loss=None)
    elif name in DETECTORS:  # no pretrained backbone: plain BatchNorm, every layer trainable
        model = models.get_model(name, weights=None, weights_backbone=None)
    else:
        model = models.get_model(name, weights=None)
    if name in DETECTORS:
        inputs = [torch.rand(3, 300, 400)]       # a list of images: one argument, not one per image
    elif name in VIDEO:
        inputs = torch.randn(1, 3, 4, 64, 64)
    elif name in FLOW:
        inputs = {"image1": torch.randn(1, 3, 128, 128), "image2": torch.randn(1, 3, 128, 128)}
    else:
        size = 224 if name in ("vit_b_16", "swin_t") else 128   # the transformers need their image size
        inputs = torch.randn(1, 3, size, size)
    transform = (lambda out: out["out"]) if name in SEGMENTERS else None
    return model.eval(), inputs, transform


def ignored(model: nn.Module, name: str) -> list:
    """Layers whose outputs are the model's answer: classes, boxes, flow."""
    layers = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == 1000]
    if name.startswith("ssd"):
        layers.append(model.head)
    if name.startswith("fasterrcnn"):
        layers += [model.rpn.head.cls_logits, model.rpn.head.bbox_pred, model.backbone.fpn, model.roi_heads]
    if name.startswith("fcos"):
        head = model.head
        layers += [head.classification_head.cls_logits, head.regression_head.bbox_reg,
                   head.regression_head.bbox_ctrness]
    if name.startswith("raft"):
        layers += [m for m in (model.corr_block, model.update_block, model.mask_predictor) if m is not None]
    return layers


def forward(model: nn.Module, inputs, transform=None):
    """Call the model as the example does: keyword inputs for a dict, else one argument."""
    out = model(**inputs) if isinstance(inputs, dict) else model(inputs)
    return transform(out) if transform else out


def detection_signature(outputs) -> list:
    """Detections vary in number with the weights: compare keys and per-detection shapes only."""
    return [(path, shape[1:]) for path, shape in output_signature(outputs)]


def prune(tp, model: nn.Module, name: str, inputs, transform, global_pruning: bool) -> None:
    """One interactive step of 50% group-norm pruning, then refresh the regulariser."""
    channel_groups = {}
    if isinstance(model, models.VisionTransformer):
        channel_groups = {m: m.num_heads for m in model.modules() if isinstance(m, nn.MultiheadAttention)}
    pruner = tp.pruner.GroupNormPruner(
        model, example_inputs=inputs, importance=tp.importance.GroupMagnitudeImportance(p=1),
        iterative_steps=1, pruning_ratio=0.5, global_pruning=global_pruning,
        ignored_layers=ignored(model, name), channel_groups=channel_groups, output_transform=transform)
    tp.utils.print_tool.before_pruning(model)
    for group in pruner.step(interactive=True):
        group.prune()
    pruner.update_regularizer()
    pruner.regularize(model)
    if isinstance(model, models.VisionTransformer):   # torchvision's ViT reads its width from hidden_dim
        model.hidden_dim = model.conv_proj.out_channels
    tp.utils.print_tool.after_pruning(model)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18", choices=MODELS)
    parser.add_argument("--global_pruning", action="store_true", help="rank all groups together")
    args, tp = parse_args(parser, argv)
    model, inputs, transform = build(args.model)
    signature = detection_signature if args.model in DETECTORS else output_signature
    before = measure(model, lambda: forward(model, inputs, transform), signature)
    prune(tp, model, args.model, inputs, transform, args.global_pruning)
    with torch.no_grad():
        out = forward(model, inputs, transform)
    for tensor in tp.utils.flatten_as_list(out):
        print("  output", tuple(tensor.shape))
    report(before, measure(model, lambda: forward(model, inputs, transform), signature), model=args.model)


if __name__ == "__main__":
    main()
