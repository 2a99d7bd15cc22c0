"""MODEL specs: where the command line gets a model from, and how a pruned file rebuilds it.

=========================  ==========================================================
``torchvision:resnet50``   ``torchvision.models.get_model(name)`` (random weights)
``timm:convnext_tiny``     ``timm.create_model(name, pretrained=False)``
``hf:DIR``                 ``transformers.AutoModel.from_pretrained(DIR)`` (local, offline)
``FILE.py:FUNCTION``       your builder: returns a model, or ``(model, example_inputs)``
``PRUNED.pt``              a file written by ``structprune prune --out``
=========================  ==========================================================

A pruned file is what :func:`structprune.save` writes (``structprune.load(path, builder)`` reads
it) plus a record under :data:`RECORD_KEY`: the spec of the unpruned model and the input shape,
so the command line can rebuild the fresh model and re-shape it.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from structprune.cli.errors import CliError

RECORD_KEY = "structprune_cli"
SPEC_FORMS = "torchvision:NAME, timm:NAME, hf:DIR, FILE.py:FUNCTION or a file written by `structprune prune --out`"


@dataclass
class LoadedModel:
    """A model built from a spec, with what the command line needs to feed it."""

    spec: str  # the spec that rebuilds the unpruned model (paths made absolute)
    model: nn.Module
    default_shape: tuple[int, ...]
    tokens: bool = False  # inputs are token ids (``{"input_ids": ...}``), not float tensors
    vocab_size: int = 0
    example_inputs: Any = None  # inputs a FILE.py builder returned with its model
    record: dict = field(default_factory=dict)  # the RECORD_KEY entry of a pruned file
    path: str | None = None  # the pruned file it came from

    @property
    def label(self) -> str:
        return self.path or self.spec


Source = Callable[[str], LoadedModel]
_SOURCES: dict[str, Source] = {}


def register_source(prefix: str) -> Callable[[Source], Source]:
    """Register ``build(rest_of_spec) -> LoadedModel`` for specs ``PREFIX:...`` (decorator)."""

    def decorator(build: Source) -> Source:
        _SOURCES[prefix] = build
        return build

    return decorator


def load_model(spec: str, seed: int = 0) -> LoadedModel:
    """Build the model ``spec`` names (in eval mode; random weights drawn with ``seed``)."""
    torch.manual_seed(seed)
    loaded = _dispatch(spec)
    loaded.model.eval()
    return loaded


def _dispatch(spec: str) -> LoadedModel:
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in _SOURCES:
        return _SOURCES[prefix](rest)
    file_part, sep, function = spec.rpartition(":")
    if sep and file_part.endswith(".py"):
        return build_from_file(file_part, function)
    if spec.endswith(".py"):
        raise CliError(f"model spec {spec!r} names a file but no function: write FILE.py:FUNCTION")
    if Path(spec).is_file():
        return load_pruned(spec)
    if os.sep in spec or Path(spec).suffix in (".pt", ".pth"):
        raise CliError(f"no such file: {spec}")
    raise CliError(f"bad model spec {spec!r}: expected {SPEC_FORMS}")


def _unknown_name(kind: str, name: str, known: list[str]) -> CliError:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return CliError(f"unknown {kind} model {name!r}{hint}")


@register_source("torchvision")
def build_torchvision(name: str) -> LoadedModel:
    import torchvision

    known = torchvision.models.list_models()
    if name not in known:
        raise _unknown_name("torchvision", name, known)
    model = torchvision.models.get_model(name, weights=None)
    size = 299 if name == "inception_v3" else 224
    return LoadedModel(f"torchvision:{name}", model, (1, 3, size, size))


@register_source("timm")
def build_timm(name: str) -> LoadedModel:
    import timm

    known = timm.list_models()
    if name not in known:
        raise _unknown_name("timm", name, known)
    model = timm.create_model(name, pretrained=False)
    size = tuple(getattr(model, "pretrained_cfg", {}).get("input_size", (3, 224, 224)))
    return LoadedModel(f"timm:{name}", model, (1,) + size)


@register_source("hf")
def build_hf(directory: str) -> LoadedModel:
    path = Path(directory).expanduser()
    if not path.is_dir():
        raise CliError(f"no such directory: {directory} (hf:DIR takes a local directory saved with "
                       "save_pretrained; nothing is downloaded)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a local load is quick; keep --json / --quiet output clean
    try:
        model = AutoModel.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as error:
        raise CliError(f"cannot load a Hugging Face model from {directory}: {_first_line(error)}") from None
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    config = model.config
    length = min(128, getattr(config, "max_position_embeddings", 128) or 128)
    return LoadedModel(f"hf:{path.resolve()}", model, (1, length), tokens=True,
                       vocab_size=int(getattr(config, "vocab_size", 0) or 0))


def build_from_file(file: str, function: str) -> LoadedModel:
    """Call ``function()`` from the Python file ``file``: a model or ``(model, example_inputs)``."""
    path = Path(file).expanduser().resolve()
    if not path.is_file():
        raise CliError(f"no such file: {file}")
    name = f"structprune_user_{path.stem}_{abs(hash(path))}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # dataclasses and pickling look classes up there
    try:
        module_spec.loader.exec_module(module)
        builder = getattr(module, function, None)
        if not callable(builder):
            raise CliError(f"{file} has no function {function!r}")
        built = builder()
    except CliError:
        raise
    except Exception as error:  # the user's code: report it in one line
        raise CliError(f"{file}:{function} failed to build a model ({_first_line(error)})") from None
    model, inputs = built if isinstance(built, (tuple, list)) else (built, None)
    if not isinstance(model, nn.Module):
        raise CliError(f"{file}:{function}() returned {type(model).__name__}, not a torch.nn.Module "
                       "(or a (model, example_inputs) pair)")
    tensor = inputs if isinstance(inputs, torch.Tensor) else None
    shape = tuple(tensor.shape) if tensor is not None else (1, 3, 224, 224)
    return LoadedModel(f"{path}:{function}", model, shape, example_inputs=inputs)


def load_pruned(path: str) -> LoadedModel:
    """Rebuild the unpruned model from the file's record, re-shape it and load the weights."""
    from structprune.io import load_state_dict

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a file that is not a checkpoint
        raise CliError(f"{path} is not a model file structprune can read: {_first_line(error)}") from None
    if not isinstance(saved, dict) or RECORD_KEY not in saved:
        raise CliError(f"{path} has no model spec (it was not written by `structprune prune --out`); "
                       "load it in Python with structprune.load(path, builder)")
    record = saved[RECORD_KEY]
    loaded = _dispatch(record["spec"])
    loaded.model = load_state_dict(loaded.model, saved)
    loaded.record, loaded.path = record, path
    return loaded


def save_pruned(model: nn.Module, path: str, record: dict[str, Any]) -> int:
    """Write ``structprune.state_dict(model)`` plus the command line's record; return the file size."""
    from structprune.io import state_dict

    payload = state_dict(model)
    payload[RECORD_KEY] = record
    Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return os.path.getsize(path)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
