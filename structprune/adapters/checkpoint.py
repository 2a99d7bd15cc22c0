"""Prune a Hugging Face safetensors checkpoint larger than memory, shard by shard.

1. build the model from its ``config.json`` on the ``meta`` device (no weights allocated);
2. trace it and choose the units with the usual pruner (ratios, heads, ``round_to``, the config's
   limits), scoring them with magnitudes read from the checkpoint tensor by tensor
   (:mod:`.checkpoint_scores`); the meta model is pruned, which gives the new shapes and config;
3. stream every tensor through the plan: read it, keep the surviving indices along each pruned
   axis, append it to the new shard (:mod:`.shards`), so memory stays near the largest tensor;
4. write ``config.json`` (fields from the family's adapter), the shard index, and copy the
   tokenizer / generation files, so stock ``from_pretrained(out_dir)`` loads the pruned model.

Example::

    from structprune.adapters import prune_checkpoint

    result = prune_checkpoint("Llama-3-8B/", "Llama-3-8B-pruned/", pruning_ratio=0.25)
    model = transformers.AutoModelForCausalLM.from_pretrained("Llama-3-8B-pruned/")
"""

from __future__ import annotations

import fnmatch
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Sequence

import torch
import torch.nn as nn

from structprune.adapters.base import _set_field, adapter_for, find_adapter
from structprune.adapters.checkpoint_scores import (StoredMagnitudeImportance, current_keeps, module_tensor_names,
                                                    tensor_targets)
from structprune.adapters.shards import INDEX_NAME, SafetensorsCheckpoint, ShardWriter
from structprune.graph import DependencyGraph
from structprune.importance import Importance, MagnitudeImportance

logger = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".ckpt")
SKIPPED_FILES = {"config.json", INDEX_NAME, "pytorch_model.bin.index.json"}


@dataclass
class CheckpointPruneResult:
    """What :func:`prune_checkpoint` wrote: the config fields it changed, sizes and timings."""

    out_dir: Path
    config_fields: dict[str, Any]
    params_before: int
    params_after: int
    bytes_written: int
    files: list[str]
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def meta_model(directory: str | Path) -> nn.Module:
    """The model class named by ``config.architectures`` (``AutoModel`` otherwise), built from the
    directory's config on ``meta``, in eval mode, with eager attention for the trace."""
    import transformers

    config = transformers.AutoConfig.from_pretrained(str(directory), local_files_only=True)
    names = getattr(config, "architectures", None) or []
    cls = next((getattr(transformers, n) for n in names if hasattr(transformers, n)), None)
    config._attn_implementation = "eager"
    with torch.device("meta"):
        model = cls(config) if cls is not None else transformers.AutoModel.from_config(config)
    return model.eval()


def _output(out: Any) -> Any:
    """The tensor a causal LM or encoder returns (logits, else the last hidden state)."""
    for name in ("logits", "last_hidden_state"):
        value = getattr(out, name, None)
        if value is not None:
            return value
    return out[0] if isinstance(out, (tuple, list)) else out


def matching_modules(model: nn.Module, patterns: Sequence[str]) -> list[nn.Module]:
    """Modules whose qualified names match one of the glob ``patterns`` (each must match one)."""
    names = [n for n, _ in model.named_modules() if n]
    found = []
    for pattern in patterns:
        matched = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not matched:
            raise ValueError(f"structprune.adapters.prune_checkpoint: ignored pattern {pattern!r} matches no "
                             f"module; names look like {', '.join(names[:4])}")
        found += [model.get_submodule(n) for n in matched]
    return found


def kept_indices(graph: DependencyGraph, names: dict[int, dict[str, str]],
                 original: dict[str, tuple[int, ...]]) -> dict[str, dict[int, torch.Tensor]]:
    """Checkpoint name -> {axis: original indices still present} for every pruned tensor axis,
    read from the graph's dead classes (``names``: see :func:`module_tensor_names`)."""
    keeps = {}
    for name, axes in tensor_targets(graph, names).items():
        for axis, targets in axes.items():
            alive = [t.alive_rows(graph.dead) for t in targets]
            if any(len(a) != original[name][axis] or not torch.equal(a, alive[0]) for a in alive):
                raise RuntimeError(f"structprune.adapters.prune_checkpoint: the targets slicing {name} along axis "
                                   f"{axis} disagree on what it keeps; please report this model")
        kept = current_keeps(graph, axes)
        if kept:
            keeps[name] = kept
    return keeps


def prune_checkpoint(source: str | Path, out_dir: str | Path, importance: Importance | None = None,
                     ignored: Sequence[str] = (), seq_len: int = 8, **options: Any) -> CheckpointPruneResult:
    """Prune the safetensors checkpoint in ``source`` (single file or sharded with an index) and
    write a checkpoint that stock ``from_pretrained(out_dir)`` loads, holding about one tensor in
    memory at a time.

    ``importance``: a magnitude criterion (default ``MagnitudeImportance(p=2)``, as in memory);
    ``ignored``: glob patterns of module names whose output channels stay (like ``--ignore``);
    ``options``: :class:`~structprune.pruner.BasePruner` options (``pruning_ratio``,
    ``prune_num_heads``, ``head_pruning_ratio``, ``round_to``, ...; one step).  The config limits
    of the family's adapter apply, so the result is always expressible by its config.

    Example::

        prune_checkpoint("llama/", "llama-pruned/", pruning_ratio=0.5, prune_num_heads=True,
                         head_pruning_ratio=0.25)
        transformers.AutoModelForCausalLM.from_pretrained("llama-pruned/")
    """
    source, out = Path(source), Path(out_dir)
    if out.exists() and out.resolve() == source.resolve():
        raise ValueError("structprune.adapters.prune_checkpoint: out_dir must differ from the source directory")
    if options.get("iterative_steps", 1) != 1:
        raise ValueError("structprune.adapters.prune_checkpoint prunes in one step (the magnitudes are read "
                         "once); drop iterative_steps")
    clock, seconds = time.perf_counter(), {}
    checkpoint = SafetensorsCheckpoint(source)
    model = meta_model(source)
    original = {name: checkpoint.info(name).shape for name in checkpoint.names()}
    names = module_tensor_names(model, list(original))
    pruner, seconds["trace"], seconds["select"] = _prune_on_meta(model, checkpoint, names, importance, ignored,
                                                                 seq_len, options)
    keeps = kept_indices(pruner.DG, names, original)
    _check_shapes(model, names, original, keeps)
    fields = _config_fields(model)
    clock = time.perf_counter()
    files, written = _write_checkpoint(checkpoint, out, keeps, source, fields)
    seconds["write"] = time.perf_counter() - clock
    after = sum(_numel(_pruned_shape(shape, keeps.get(name, {}))) for name, shape in original.items())
    return CheckpointPruneResult(out, fields, sum(_numel(s) for s in original.values()), after, written, files,
                                 {k: round(v, 2) for k, v in seconds.items()}, list(pruner.config_notes))


def _prune_on_meta(model: nn.Module, checkpoint: SafetensorsCheckpoint, names: dict[int, dict[str, str]],
                   importance: Importance | None, ignored: Sequence[str], seq_len: int, options: dict[str, Any]):
    """Build the pruner on the meta model, then prune it, scoring from the checkpoint."""
    from structprune.pruner import BasePruner

    clock = time.perf_counter()
    scores = StoredMagnitudeImportance(importance or MagnitudeImportance(p=2), checkpoint)
    options["ignored_layers"] = list(options.get("ignored_layers") or []) + matching_modules(model, ignored)
    inputs = {"input_ids": torch.zeros(1, seq_len, dtype=torch.long, device="meta")}
    with torch.no_grad():
        pruner = BasePruner(model, inputs, importance=scores, output_transform=_output, **options)
    traced = time.perf_counter()
    scores.attach(pruner.DG, names)
    pruner.step()
    logger.info("prune_checkpoint: %d tensor reads for scoring", scores.reads)
    return pruner, traced - clock, time.perf_counter() - traced


def _check_shapes(model: nn.Module, names: dict[int, dict[str, str]], original: dict[str, tuple[int, ...]],
                  keeps: dict[str, dict[int, torch.Tensor]]) -> None:
    """Every stored tensor of the pruned meta model has the shape the plan gives its checkpoint entry."""
    for module_name, module in model.named_modules():
        for attr, tensor in (*module._parameters.items(), *module._buffers.items()):
            name = names.get(id(module), {}).get(attr)
            if tensor is None or name not in original:
                continue
            expected = _pruned_shape(original[name], keeps.get(name, {}))
            if tuple(tensor.shape) != expected:
                raise RuntimeError(f"structprune.adapters.prune_checkpoint: {module_name}.{attr} was pruned to "
                                   f"{tuple(tensor.shape)} but the plan for {name} gives {expected}; nothing was "
                                   "written (please report this model)")


def _config_fields(model: nn.Module) -> dict[str, Any]:
    """The adapter's config fields for the pruned meta model (checked by rebuilding it on meta)."""
    adapter = adapter_for(model)
    adapter.sync_config(model)
    return adapter.config_fields(model)


def _write_checkpoint(checkpoint: SafetensorsCheckpoint, out: Path, keeps: dict[str, dict[int, torch.Tensor]],
                      source: Path, fields: dict[str, Any]) -> tuple[list[str], int]:
    """Shards (same file names as the source), index, config and side files; returns (files, bytes)."""
    import transformers

    out.mkdir(parents=True, exist_ok=True)
    weight_map, total = {}, 0
    for file in checkpoint.files:
        names = checkpoint.by_file[file]
        layout = {n: (checkpoint.info(n).dtype, _pruned_shape(checkpoint.info(n).shape, keeps.get(n, {})))
                  for n in names}
        with ShardWriter(out / file, layout) as writer:
            for name in names:
                writer.write(name, _sliced(checkpoint.read(name), keeps.get(name, {})))
        total += writer.total_bytes
        weight_map.update(dict.fromkeys(names, file))
    if checkpoint.sharded:
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        (out / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
    config = transformers.AutoConfig.from_pretrained(str(source), local_files_only=True)
    adapter = find_adapter(SimpleNamespace(config=config))
    if adapter is not None:  # the adapter writes them (per-layer sizes also change the config class)
        adapter.write_fields(config, fields)
    else:
        for key, value in fields.items():
            _set_field(config, key, value)
    config.save_pretrained(str(out))
    copied = _copy_side_files(source, out)
    return list(checkpoint.files) + copied, total


def _copy_side_files(source: Path, out: Path) -> list[str]:
    """Copy tokenizer, generation config and other non-weight files at the top of ``source``."""
    copied = []
    for path in sorted(source.iterdir()):
        if path.is_file() and path.name not in SKIPPED_FILES and not path.name.endswith(WEIGHT_SUFFIXES):
            shutil.copy2(path, out / path.name)
            copied.append(path.name)
    return copied


def _sliced(tensor: torch.Tensor, axes: dict[int, torch.Tensor]) -> torch.Tensor:
    for axis, kept in sorted(axes.items()):
        tensor = torch.index_select(tensor, axis, kept)
    return tensor


def _pruned_shape(shape: tuple[int, ...], axes: dict[int, torch.Tensor]) -> tuple[int, ...]:
    return tuple(len(axes[a]) if a in axes else size for a, size in enumerate(shape))


def _numel(shape: tuple[int, ...]) -> int:
    return int(torch.Size(shape).numel())

