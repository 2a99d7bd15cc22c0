"""Per-layer widths for Llama-style decoders (Llama, Mistral, Qwen2, Gemma, Phi-3).

The stock modeling code of these families sizes every layer from one global config field
(``LlamaMLP`` reads ``config.intermediate_size``), so a model whose layers kept different FFN
widths or head counts has no stock config.  transformers' own ``per_layer_config`` (a config
field holding per-layer overrides, serialised in ``config.json``) can describe it; what is
missing is modeling code that reads it.  This module adds the least of that: for each family a
config subclass (``model_type`` ``structprune_<family>``, e.g. ``structprune_llama``) and model
subclasses that build each decoder layer from its own ``config.per_layer_config[i]``, registered
with ``AutoConfig`` / ``AutoModel`` / ``AutoModelForCausalLM`` when :mod:`structprune.adapters` is
imported, so stock ``save_pretrained`` / ``from_pretrained`` (no ``trust_remote_code``),
``generate`` and ``transformers.pipeline`` work.  Per layer: ``intermediate_size``,
``num_attention_heads`` and ``num_key_value_heads``; the hidden size and ``head_dim`` stay global.

A pruner opts in with ``uniform_layers=False`` (with ``global_pruning=True``); the Llama-style
adapter then converts the model in place (:func:`make_uneven`) as soon as its layers differ, and
back to the stock classes when they are all alike again.

Example::

    pruner = tp.pruner.BasePruner(model, ids, global_pruning=True, uniform_layers=False,
                                  pruning_ratio=0.5, ignored_layers=[model.lm_head],
                                  output_transform=lambda o: o.logits)
    pruner.step()
    type(model.config).__name__          # 'UnevenLlamaConfig' (model_type 'structprune_llama')
    model.save_pretrained("pruned/")
    # in a fresh process:
    import structprune.adapters          # registers the structprune_* model types
    AutoModelForCausalLM.from_pretrained("pruned/")
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterator

import torch.nn as nn

try:
    import transformers
    from huggingface_hub.dataclasses import strict
except ImportError:  # transformers is optional
    transformers = None

PER_LAYER_FIELDS = ("intermediate_size", "num_attention_heads", "num_key_value_heads")
FAMILIES = {"LlamaConfig": "Llama", "MistralConfig": "Mistral", "Qwen2Config": "Qwen2", "GemmaConfig": "Gemma",
            "Phi3Config": "Phi3"}
MODEL_TYPE_PREFIX = "structprune_"

_UNEVEN_CONFIGS: dict[type, type] = {}  # stock config class -> uneven config class
_UNEVEN_MODELS: dict[type, dict[str, type]] = {}  # uneven config class -> {"ForCausalLM": class, "Model": class}


class UnevenLayersConfig:
    """Mixin of the ``structprune_*`` config classes: validates each layer's own config, and
    registers the family's model classes the first time such a config is built (so
    ``AutoModelForCausalLM.from_pretrained`` finds them without importing every family's modeling
    code up front)."""

    def __post_init__(self, **kwargs: Any) -> None:
        uneven_model_classes(type(self))
        super().__post_init__(**kwargs)

    def validate_architecture(self) -> None:
        """Each layer's query heads must group over its key/value heads.  (Llama's own check, hidden
        size a multiple of the head count, does not apply: ``head_dim`` is always explicit here.)"""
        for i, layer in enumerate(self.per_layer_config):
            heads, kv_heads = layer.num_attention_heads, layer.num_key_value_heads
            if kv_heads <= 0 or heads % kv_heads:
                raise ValueError(f"layer {i} has {heads} query heads for {kv_heads} key/value heads, "
                                 "which do not group")
        if self._getattr_without_heterogeneous_validation("head_dim", None) is None:
            raise ValueError("a config with per-layer head counts needs an explicit head_dim")

    def validate_rope(self) -> None:
        with global_sizes_readable(self):  # Phi-3's check reads the (most common) head count
            super().validate_rope()


class UnevenLayersModel:
    """Mixin of the ``structprune_*`` model classes: every decoder layer is built from
    ``config.per_layer_config[i]`` (a copy of the config with that layer's sizes)."""

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        with global_sizes_readable(config):
            super().__init__(config, *args, **kwargs)
        if config.is_heterogeneous:
            layers = self.base_model.layers
            for i, layer in enumerate(layers):
                layers[i] = type(layer)(config.per_layer_config[i], i)
            self.post_init()

    def set_attn_implementation(self, *args: Any, **kwargs: Any) -> Any:
        result = super().set_attn_implementation(*args, **kwargs)
        bind_layer_configs(self)  # the layers hold copies of the config: give them the new one
        return result


@contextlib.contextmanager
def global_sizes_readable(config: Any) -> Iterator[None]:
    """Let the stock ``__init__`` read the global sizes of a heterogeneous config (the layers it
    builds from them are rebuilt right after), without transformers' warning."""
    if not config.is_heterogeneous:
        yield
        return
    quiet = logging.getLogger("transformers.integrations.heterogeneity.configuration_utils")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    config.allow_global_per_layer_attribute_access = True
    try:
        yield
    finally:
        config.__dict__.pop("allow_global_per_layer_attribute_access", None)
        quiet.setLevel(level)


def bind_layer_configs(model: nn.Module) -> None:
    """Point every module inside decoder layer ``i`` that holds a config at layer ``i``'s config
    (the global config when the model's layers are all alike)."""
    config = model.config
    for i, layer in enumerate(model.base_model.layers):
        layer_config = config.per_layer_config[i] if config.is_heterogeneous else config
        for module in layer.modules():
            if isinstance(getattr(module, "config", None), transformers.PreTrainedConfig):
                module.config = layer_config


def uneven_config_class(stock: type) -> type | None:
    """The ``structprune_*`` config class of a stock Llama-style config class (itself if it is
    one already), or ``None`` for other families."""
    if issubclass(stock, UnevenLayersConfig):
        return stock
    return _UNEVEN_CONFIGS.get(stock)


def stock_config_class(config_class: type) -> type:
    """The stock family config class behind a ``structprune_*`` one (or the class itself)."""
    if not issubclass(config_class, UnevenLayersConfig):
        return config_class
    return next(c for c in config_class.__mro__[1:] if not issubclass(c, UnevenLayersConfig))


def uneven_model_classes(config_class: type) -> dict[str, type]:
    """``{"ForCausalLM": ..., "Model": ...}`` for a ``structprune_*`` config class, made and
    registered with ``AutoModel`` / ``AutoModelForCausalLM`` on first use."""
    if config_class not in _UNEVEN_MODELS:
        family = FAMILIES[stock_config_class(config_class).__name__]
        classes = {}
        for suffix, auto in (("ForCausalLM", transformers.AutoModelForCausalLM), ("Model", transformers.AutoModel)):
            stock = getattr(transformers, family + suffix)
            classes[suffix] = _named(type(f"Uneven{family}{suffix}", (UnevenLayersModel, stock),
                                          {"config_class": config_class, "__doc__": UnevenLayersModel.__doc__}))
            auto.register(config_class, classes[suffix], exist_ok=True)
        _UNEVEN_MODELS[config_class] = classes
    return _UNEVEN_MODELS[config_class]


def model_class_for(model: nn.Module, config_class: type) -> type:
    """The class ``model`` has with a config of ``config_class``: the uneven twin of its stock class
    or the other way round."""
    current = type(model)
    stock = next(c for c in current.__mro__ if not issubclass(c, UnevenLayersModel))
    if not issubclass(config_class, UnevenLayersConfig):
        return stock
    suffix = "ForCausalLM" if stock.__name__.endswith("ForCausalLM") else "Model"
    return uneven_model_classes(config_class)[suffix]


def supports_uneven(model: nn.Module) -> bool:
    """Whether ``model`` (a bare decoder or a causal LM) can be given per-layer widths."""
    name = type(model).__name__
    return (uneven_config_class(type(getattr(model, "config", None))) is not None
            and (name.endswith("ForCausalLM") or name.endswith("Model")))


def configure(config: Any, fields: dict[str, Any]) -> None:
    """Set ``fields`` on ``config`` in place; a ``"per_layer_config"`` entry (``{i: {field: size}}``,
    or ``None``) also switches the config to the uneven class (or back to the stock class)."""
    per_layer = fields.get("per_layer_config")
    target = uneven_config_class(type(config)) if per_layer else stock_config_class(type(config))
    config.per_layer_config = None
    config.__class__ = target
    for key, value in fields.items():
        if key != "per_layer_config":
            setattr(config, key, value)
    if per_layer:
        config.per_layer_config = per_layer


def make_uneven(model: nn.Module, fields: dict[str, Any]) -> None:
    """Write ``fields`` (see :func:`configure`) into ``model.config`` in place, give the model the
    matching class and its layers their own configs."""
    configure(model.config, fields)
    model.__class__ = model_class_for(model, type(model.config))
    bind_layer_configs(model)


def _named(cls: type) -> type:
    """Give a generated class a home in this module (for pickling and repr)."""
    cls.__module__ = __name__
    cls.__qualname__ = cls.__name__
    globals()[cls.__name__] = cls
    return cls


def _register_configs() -> None:
    for stock_name, family in FAMILIES.items():
        stock = getattr(transformers, stock_name, None)
        if stock is None or stock in _UNEVEN_CONFIGS:
            continue
        model_type = MODEL_TYPE_PREFIX + stock.model_type
        cls = type(f"Uneven{stock_name}", (UnevenLayersConfig, stock), {"model_type": model_type,
                                                                         "__doc__": UnevenLayersConfig.__doc__})
        cls = _named(strict(cls))
        transformers.AutoConfig.register(model_type, cls, exist_ok=True)
        _UNEVEN_CONFIGS[stock] = cls


if transformers is not None:
    _register_configs()
