"""timm suite: over 100 architectures across the families of issue 4, small variants, random weights.

Models that accept any input size run at ``IMAGE`` px; models with a fixed size (position
embeddings, windows) are built for a smaller ``img_size`` where their constructor takes one,
else run at their default size.
"""

from __future__ import annotations

import timm
import torch

from benchmarks.suites import Case

IMAGE = 128
SMALL_FIXED = 112  # divisible by patch sizes 14 and 16
SMALL_BY_PREFIX = {"hiera": 128}  # stride 4 then three 2x unrolls: a multiple of 32
ARCHITECTURES = [
    "resnet18 resnet26d resnet50 resnet50d resnetv2_50 resnext26ts resnext50_32x4d seresnext26d_32x4d resnest14d resnest26d ecaresnet26t skresnet18 res2net50_26w_4s",
    "regnetx_002 regnety_002 regnetz_005 regnety_008",
    "efficientnet_b0 efficientnet_lite0 efficientnetv2_rw_t tf_efficientnetv2_b0 mixnet_s mnasnet_small tinynet_e",
    "mobilenetv2_050 mobilenetv3_small_050 mobilenetv3_large_100 mobilenetv4_conv_small mobilenetv4_hybrid_medium lcnet_050 fbnetc_100 spnasnet_100",
    "ghostnet_050 ghostnetv2_100",
    "convnext_atto convnext_femto convnextv2_atto convnextv2_femto",
    "vit_tiny_patch16_224 vit_small_patch16_224 deit_tiny_patch16_224 deit_tiny_distilled_patch16_224 beit_base_patch16_224 eva02_tiny_patch14_224 vit_relpos_small_patch16_224 vit_srelpos_small_patch16_224 flexivit_small cait_xxs24_224 xcit_nano_12_p16_224 crossvit_tiny_240 pit_ti_224 deit3_small_patch16_224",
    "swin_tiny_patch4_window7_224 swinv2_tiny_window8_256 swinv2_cr_tiny_224",
    "poolformer_s12 poolformerv2_s12 convformer_s18 caformer_s18",
    "mixer_s16_224 resmlp_12_224 gmlp_ti16_224",
    "coat_lite_tiny coat_tiny twins_pcpvt_small twins_svt_small pvt_v2_b0",
    "maxvit_tiny_rw_224 maxvit_nano_rw_256 coatnet_nano_rw_224 maxxvit_rmlp_nano_rw_256",
    "efficientformer_l1 efficientformerv2_s0",
    "levit_128s levit_conv_128s",
    "cspresnet50 cspdarknet53 cspresnext50 darknet17 cs3darknet_s",
    "dla34 dla46_c dla60x_c",
    "hrnet_w18_small hrnet_w18_small_v2",
    "xception41 legacy_xception",
    "nfnet_l0 nf_resnet26 eca_nfnet_l0",
    "repvgg_a0 repvgg_b0",
    "fastvit_t8 fastvit_sa12",
    "densenet121 vgg11 inception_v3 rexnet_100 hardcorenas_a selecsls42b gernet_s mobilevit_xxs mobilevitv2_050 edgenext_xx_small efficientvit_b0 efficientvit_m0 repghostnet_050 fasternet_t0 tiny_vit_5m_224 inception_next_tiny hgnet_tiny hgnetv2_b0 vovnet39a ese_vovnet19b_dw visformer_tiny convit_tiny davit_tiny focalnet_tiny_srf mvitv2_tiny rdnet_tiny repvit_m1 starnet_s1 hiera_tiny_224",
]
SMALL_IMG_PREFIXES = ("vit_", "deit", "beit", "eva02", "flexivit", "cait", "xcit", "pit_", "mixer", "resmlp",
                      "gmlp", "levit", "convit", "hiera")


def architectures() -> list[str]:
    return [name for line in ARCHITECTURES for name in line.split()]


def _family(name: str) -> str:
    return name.split("_")[0].rstrip("0123456789")


def _small_size(name: str) -> int:
    return next((size for prefix, size in SMALL_BY_PREFIX.items() if name.startswith(prefix)), SMALL_FIXED)


def _input_size(model, small: int) -> tuple[int, int]:
    cfg = model.pretrained_cfg
    size = tuple(cfg["input_size"][1:])
    if small:
        return small, small
    if cfg.get("fixed_input_size", False):
        return size
    return min(IMAGE, size[0]), min(IMAGE, size[1])


def _build(name: str):
    def build():
        small = _small_size(name) if name.startswith(SMALL_IMG_PREFIXES) else 0
        try:
            model = timm.create_model(name, pretrained=False, **({"img_size": small} if small else {}))
        except TypeError:
            model, small = timm.create_model(name, pretrained=False), 0
        return model, torch.rand(1, 3, *_input_size(model, small))
    return build


def cases() -> list[Case]:
    """One case per architecture of :data:`ARCHITECTURES`."""
    return [Case(name, _build(name), _family(name)) for name in architectures()]
