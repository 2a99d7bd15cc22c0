"""The model-adapter registry: keep a model family's config in step with its pruned modules.

Pruning changes module shapes but not ``model.config``, so ``save_pretrained`` would write a config
that rebuilds the *unpruned* architecture.  An adapter reads the pruned shapes back out of the
modules, checks that the family's config can express them (e.g. ``BertConfig`` has one
``intermediate_size`` for every layer) and returns the config fields to set.

Add a family by subclassing :class:`ModelAdapter` and registering it for its config classes::

    @register_adapter(LlamaConfig)
    class LlamaAdapter(ModelAdapter):
        def config_fields(self, model):
            ...  # read shapes, call self.uniform(...) / raise NotExpressibleError
            return {"intermediate_size": ..., "num_key_value_heads": ...}
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
import torch.nn as nn


class NotExpressibleError(ValueError):
    """The pruned model's structure has no faithful representation in its family's config."""


@dataclass
class PruningLimits:
    """What a family's config can express, stated as limits on a pruner.

    ``keep`` maps modules whose output channels must stay to the reason; ``heads`` / ``head_dims``
    say whether whole attention heads / the positions inside every head may go; with
    ``uniform_layers`` every layer must keep the same widths (one config field sizes them all), so
    global ranking is off.  ``hidden_follows_heads`` (``num_heads``, hidden-size producers) is for
    configs that derive the head size as hidden / heads: when the pruner is asked to remove whole
    heads, the hidden size loses the same fraction instead of staying, so both stay in step.
    ``num_heads`` names layers whose output units are whole attention heads (fused
    query/key/value projections whose heads the trace sees as plain units), with their head count;
    each list in ``same_ratio`` holds layers of different widths whose output channels the config
    sizes by one ratio (a target search keeps them losing the same fraction).
    :class:`~structprune.pruner.BasePruner` applies these by default to a model with a registered
    adapter (``keep_config_expressible=False`` turns that off).
    """

    keep: dict[nn.Module, str] = field(default_factory=dict)
    heads: bool = True
    heads_reason: str = ""
    head_dims: bool = False
    head_dims_reason: str = "the attention scaling head_dim ** -0.5 is rebuilt from the config"
    uniform_layers: bool = True
    hidden_follows_heads: tuple[int, list[nn.Module]] | None = None
    num_heads: dict[nn.Module, int] = field(default_factory=dict)
    same_ratio: list[list[nn.Module]] = field(default_factory=list)


class ModelAdapter:
    """Base class: map a pruned model's module shapes to config fields.

    Subclasses implement :meth:`config_fields`; :meth:`sync_config` writes them to
    ``model.config``.  Helpers :meth:`uniform` and :meth:`require` turn shapes that the config
    cannot express into :class:`NotExpressibleError` with the module paths in the message.
    """

    name: str = "model"

    def config_fields(self, model: nn.Module) -> dict[str, Any]:
        """Config field -> value that describe ``model``'s current (pruned) shapes (a dotted
        field such as ``"text_config.hidden_size"`` names a field of a sub-config)."""
        raise NotImplementedError

    def pruning_limits(self, model: nn.Module) -> PruningLimits:
        """The limits that keep a pruned ``model`` expressible by its config (override per family;
        the default keeps head dims and asks for the same widths in every layer)."""
        return PruningLimits()

    def sync_config(self, model: nn.Module) -> Any:
        """Set ``model.config`` from the module shapes (all fields or none) and return it.

        Before writing, the model class is rebuilt from the new config on the meta device and
        every parameter shape compared with the pruned model's: a channel count that no config
        field describes (say a conv inside the embeddings) is refused here, not at reload.  The
        modules' size attributes (``num_heads``, ``num_key_value_groups``, ``all_head_size`` ...)
        are then set to the rebuilt model's, so modules and config tell one story.
        """
        fields = self.config_fields(model)
        config = copy.deepcopy(model.config)
        self.write_fields(config, fields)
        self.check_validates(model.config, config)
        rebuilt = self.check_rebuild(model, config)
        self.write_fields(model.config, fields)
        self.adopt_config(model)
        if rebuilt is not None:
            copy_size_attributes(rebuilt, model)
        return model.config

    def write_fields(self, config: Any, fields: dict[str, Any]) -> None:
        """Set ``fields`` (from :meth:`config_fields`) on ``config`` in place."""
        for key, value in fields.items():
            _set_field(config, key, value)

    def model_class(self, model: nn.Module, config: Any) -> type:
        """The class that rebuilds ``model`` from ``config`` (a family whose config class can
        change, say to one with per-layer sizes, returns the matching model class)."""
        return type(model)

    def adopt_config(self, model: nn.Module) -> None:
        """Called after ``model.config`` got new fields (default: nothing else to do)."""

    def allow_uneven_layers(self, model: nn.Module) -> bool:
        """Opt ``model`` into per-layer widths (``uniform_layers=False``); ``False`` when the
        family's config has one width per kind of layer (the default)."""
        return False

    def check_validates(self, original: Any, config: Any) -> None:
        """Raise :class:`NotExpressibleError` when the config class's own checks (``config.validate()``,
        run by ``save_pretrained``; e.g. Llama's hidden size must be a multiple of the head count)
        refuse the new fields but accept the original ones."""
        validate = getattr(config, "validate", None)
        if not callable(validate):
            return
        try:
            original.validate()
        except Exception:  # the original config is refused already: nothing to compare with
            return
        try:
            validate()
        except Exception as error:
            self.require(False, f"the config refuses the pruned shapes ({str(error).strip().splitlines()[-1].strip()}); "
                                "choose ratios that keep its constraints (e.g. head_pruning_ratio giving a head "
                                "count that divides the pruned hidden size)")

    def check_rebuild(self, model: nn.Module, config: Any) -> nn.Module | None:
        """Raise :class:`NotExpressibleError` unless ``type(model)(config)`` has ``model``'s parameter shapes;
        return that rebuilt model (on meta), or ``None`` for a class that takes no config."""
        if not hasattr(type(model), "from_pretrained"):
            return None
        with torch.device("meta"):
            rebuilt = self.model_class(model, config)(config)
        expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
        got = {name: tuple(t.shape) for name, t in rebuilt.state_dict().items()}
        wrong = [f"{name}: pruned {shape}, config rebuilds {got.get(name)}" for name, shape in expected.items()
                 if got.get(name, shape) != shape]
        self.require(not wrong, "the config cannot express these pruned shapes (no config field sizes them): "
                                + "; ".join(wrong[:4]) + (f" (+{len(wrong) - 4} more)" if len(wrong) > 4 else ""))
        return rebuilt

    def uniform(self, field: str, sizes: Mapping[str, int], remedy: str = "") -> int:
        """The one value every module in ``sizes`` (path -> size) has, or a clear error."""
        values = sorted(set(sizes.values()))
        if len(values) == 1:
            return values[0]
        if not values:
            raise NotExpressibleError(f"{self.name}: no modules found to read `{field}` from")
        detail = ", ".join(f"{path}: {size}" for path, size in sizes.items())
        raise NotExpressibleError(f"{self.name} config has a single `{field}` but the pruned layers differ "
                                  f"({detail}); {remedy or 'prune every layer by the same amount'}")

    def require(self, condition: bool, message: str) -> None:
        """Raise :class:`NotExpressibleError` with ``message`` unless ``condition`` holds."""
        if not condition:
            raise NotExpressibleError(f"{self.name}: {message}")


def copy_size_attributes(source: nn.Module, model: nn.Module) -> None:
    """Give every module of ``model`` the integer size attributes (ints and tuples of ints) of the
    module of the same name in ``source`` (the model rebuilt from the synced config)."""
    rebuilt = dict(source.named_modules())
    for name, module in model.named_modules():
        twin = rebuilt.get(name)
        if twin is None or type(twin) is not type(module):
            continue
        for attr, value in vars(twin).items():
            if _is_size(value) and _is_size(module.__dict__.get(attr)) and module.__dict__[attr] != value:
                setattr(module, attr, value)


def _is_size(value: Any) -> bool:
    if isinstance(value, (tuple, list)):
        return bool(value) and all(_is_size(v) for v in value)
    return isinstance(value, int) and not isinstance(value, bool)


def _set_field(config: Any, key: str, value: Any) -> None:
    """``setattr`` that follows dots into sub-configs (``"text_config.hidden_size"``)."""
    *path, field = key.split(".")
    for name in path:
        config = getattr(config, name)
    setattr(config, field, value)


_ADAPTERS: dict[type, ModelAdapter] = {}


def register_adapter(*config_classes: type) -> Callable[[type[ModelAdapter]], type[ModelAdapter]]:
    """Class decorator: use this adapter for models whose ``config`` is one of ``config_classes``
    (or a subclass; the nearest registered class in the config's MRO wins)."""

    def decorate(cls: type[ModelAdapter]) -> type[ModelAdapter]:
        instance = cls()
        for config_class in config_classes:
            _ADAPTERS[config_class] = instance
        return cls

    return decorate


def registered_adapters() -> dict[type, ModelAdapter]:
    """A copy of the registry: config class -> adapter."""
    return dict(_ADAPTERS)


def find_adapter(model: nn.Module) -> ModelAdapter | None:
    """The adapter registered for ``type(model.config)``, or ``None`` (no config, or no adapter)."""
    config = getattr(model, "config", None)
    for cls in type(config).__mro__ if config is not None else ():
        if cls in _ADAPTERS:
            return _ADAPTERS[cls]
    return None


def adapter_for(model: nn.Module) -> ModelAdapter:
    """The adapter registered for ``type(model.config)``; a clear error when there is none."""
    config = getattr(model, "config", None)
    if config is None:
        raise TypeError(f"{type(model).__name__} has no `config`: model adapters are for Hugging Face models")
    adapter = find_adapter(model)
    if adapter is not None:
        return adapter
    known = ", ".join(sorted(c.__name__ for c in _ADAPTERS)) or "none"
    raise NotExpressibleError(f"no model adapter for {type(config).__name__} (registered: {known}); "
                              "add one with structprune.adapters.register_adapter")


def sync_config(model: nn.Module) -> Any:
    """Update ``model.config`` from its pruned module shapes with the registered adapter.

    Example::

        tp.pruner.MagnitudePruner(model, inputs, pruning_ratio=0.5, ignored_layers=[model.pooler]).step()
        structprune.adapters.sync_config(model)      # model.config.intermediate_size == 768
    """
    return adapter_for(model).sync_config(model)
