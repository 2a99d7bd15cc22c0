"""The runs that ``python -m benchmarks.peer_examples`` makes: one example script with its arguments each."""

from __future__ import annotations

from dataclasses import dataclass


_CHOICE_FLAGS = ("--model", "--arch", "--mode", "--method")


@dataclass(frozen=True)
class Case:
    """One run of one example script (``script`` is a module in this package)."""

    script: str
    args: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return " ".join((self.script, *(a for a in self.args if a not in _CHOICE_FLAGS)))


def _each(script: str, flag: str, values: list[str]) -> list[Case]:
    return [Case(script, (flag, value)) for value in values]


TORCHVISION = ["resnet18", "mobilenet_v3_small", "densenet121", "efficientnet_b0", "convnext_tiny", "regnet_y_400mf",
               "googlenet", "inception_v3", "squeezenet1_1", "mnasnet0_5", "shufflenet_v2_x0_5", "vit_b_16", "swin_t",
               "fasterrcnn_mobilenet_v3_large_320_fpn", "ssdlite320_mobilenet_v3_large", "fcos_resnet50_fpn",
               "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large", "fcn_resnet50", "r3d_18", "raft_small"]
TIMM = ["resnet18d", "mobilenetv3_small_050", "efficientnet_b0", "convnext_atto", "vit_tiny_patch16_224",
        "vit_small_patch16_224", "deit_tiny_patch16_224", "swin_tiny_patch4_window7_224"]
PRUNERS = ["l1", "l2", "taylor", "hessian", "lamp", "fpgm", "random", "bn_scale", "group_norm", "growing_reg",
           "custom"]

CASES: list[Case] = [
    *_each("torchvision_models", "--model", TORCHVISION),
    Case("torchvision_models", ("--model", "resnet18", "--global_pruning")),
    *_each("timm_models", "--model", TIMM),
    Case("hf_bert"),
    Case("hf_vit"),
    *_each("llm", "--arch", ["llama", "llama_gqa", "phi3"]),
    *_each("customized_layer", "--mode", ["graph", "pruner"]),
    *_each("pruning_history", "--mode", ["history", "serialization"]),
    Case("latency"),
    *_each("dependency_groups", "--mode", ["conv1", "output_layer"]),
    *_each("pruners", "--method", PRUNERS),
    Case("pruners", ("--method", "l2", "--global_pruning")),
]
QUICK = [Case("torchvision_models", ("--model", "resnet18")), Case("customized_layer", ("--mode", "pruner"))]
