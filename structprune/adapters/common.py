"""Shape checks shared by the transformer adapters: attention blocks and feed-forward blocks.

Every helper takes the adapter (for :meth:`~.base.ModelAdapter.require`, so errors name the
config class) and a module path for the message.
"""

from __future__ import annotations

import math

import torch.nn as nn

from structprune.adapters.base import ModelAdapter, PruningLimits

DERIVED_HEAD_SIZE = ("this config derives the head size as hidden / heads, so the attention must stay exactly "
                     "as wide as the hidden size: keep the hidden size (ignore the embeddings) and prune FFN "
                     "neurons only, or keep the model in memory / save it with structprune.save")


def derived_head_size_limits(*hidden_producers: nn.Module | None, num_heads: int = 0) -> PruningLimits:
    """Limits for a config that derives the head size as hidden / heads: the attention must stay
    exactly hidden-wide, so the hidden size (the output of ``hidden_producers``, e.g. the input
    embeddings) stays, and so do the heads, unless whole heads are asked for: then (with
    ``num_heads`` given) the hidden size loses the same fraction as the heads."""
    why = "the config derives the head size as hidden / heads, so the hidden size stays with the attention"
    producers = [m for m in hidden_producers if m is not None]
    return PruningLimits(keep={m: why for m in producers}, heads=False,
                         heads_reason="the config derives the head size as hidden / heads",
                         hidden_follows_heads=(num_heads, producers) if num_heads and producers else None)


def square_side_layers(model: nn.Module, hidden: int) -> dict[nn.Module, str]:
    """``hidden -> hidden`` linear layers outside the layer stacks (BERT's pooler, RoBERTa's and
    DistilBERT's classifier dense layers): configs rebuild them ``hidden_size`` wide, with no field
    of their own, so their outputs stay."""
    return {module: "the config rebuilds it hidden_size wide (no field of its own)"
            for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and module.in_features == module.out_features == hidden
            and not any(part.isdigit() for part in name.split("."))}


def encoder_limits(model: nn.Module, hidden_producer: nn.Module | None = None) -> PruningLimits:
    """:func:`derived_head_size_limits` for a BERT-like encoder whose hidden size ``hidden_producer``
    writes (default: the word embeddings); its :func:`square_side_layers` (pooler, classifier dense)
    stay too, or follow the heads with the hidden size."""
    if hidden_producer is None:
        hidden_producer = getattr(model, "base_model", model).embeddings.word_embeddings
    hidden = getattr(hidden_producer, "embedding_dim", None) or hidden_producer.out_features
    side = square_side_layers(model, hidden)
    limits = derived_head_size_limits(hidden_producer, *side, num_heads=model.config.num_attention_heads)
    limits.keep.update(side)
    return limits


def out_width(module: nn.Module) -> int:
    """Output features of a ``nn.Linear`` or a GPT-2 style ``Conv1D`` (weight ``in x out``)."""
    return module.out_features if isinstance(module, nn.Linear) else module.weight.shape[1]


def in_width(module: nn.Module) -> int:
    """Input features of a ``nn.Linear`` or a GPT-2 style ``Conv1D``."""
    return module.in_features if isinstance(module, nn.Linear) else module.weight.shape[0]


def attention_heads(adapter: ModelAdapter, path: str, projections: dict[str, nn.Module | int], output: nn.Module,
                    hidden: int, head_dim: int, scaling: float | None = None,
                    free_head_dim: bool = False) -> int:
    """Number of heads of an attention block whose q/k/v ``projections`` write ``head_dim``-wide heads
    and whose ``output`` projection writes the ``hidden``-wide residual stream.

    ``free_head_dim``: the config has its own ``head_dim`` field (heads x head_dim may differ from
    hidden); otherwise the width must equal ``hidden``.  ``scaling`` (when the block scales by
    ``head_dim ** -0.5``) catches pruned head dims, which no config rebuilds.  A projection may be
    given as its width (a slice of a fused q/k/v projection).
    """
    widths = {name: module if isinstance(module, int) else out_width(module) for name, module in projections.items()}
    adapter.require(len(set(widths.values())) == 1, f"{path} has projection widths {widths}")
    width = next(iter(widths.values()))
    if scaling is not None:
        adapter.require(math.isclose(scaling, head_dim ** -0.5),
                        f"{path} had its head dims pruned (scaling {scaling:.4f} is not head_dim ** -0.5 for "
                        f"head_dim {head_dim}); the config rebuilds the scaling from the head size: prune whole "
                        "heads or FFN neurons only")
    adapter.require(width % head_dim == 0, f"{path} width {width} is not a whole number of {head_dim}-wide heads")
    adapter.require(in_width(output) == width and out_width(output) == hidden,
                    f"{path} output projection is {in_width(output)} -> {out_width(output)}, "
                    f"expected {width} -> {hidden}")
    if not free_head_dim:
        adapter.require(width == hidden, f"{path} keeps {width // head_dim} heads x {head_dim} = {width} in "
                                         f"hidden size {hidden}; {DERIVED_HEAD_SIZE}")
    return width // head_dim


def ffn_width(adapter: ModelAdapter, path: str, up: nn.Module, down: nn.Module, hidden: int) -> int:
    """Neurons of a feed-forward block ``down(act(up(x)))`` on a ``hidden``-wide stream."""
    adapter.require(out_width(up) == in_width(down) and out_width(down) == hidden,
                    f"{path} is {in_width(up)} -> {out_width(up)} / {in_width(down)} -> {out_width(down)} "
                    f"on hidden size {hidden}")
    return out_width(up)


def unchanged_scale(adapter: ModelAdapter, scaled: bool, hidden: int, original: int) -> None:
    """Refuse a pruned hidden size when embeddings are scaled by ``sqrt(hidden)`` rebuilt from the config."""
    adapter.require(not scaled or hidden == original,
                    f"the embeddings are scaled by sqrt({original}) but would reload scaled by sqrt({hidden}); "
                    "keep the hidden size or keep the model in memory")


def fused_widths(adapter: ModelAdapter, path: str, module: nn.Module, parts: int) -> dict[str, int]:
    """The widths of the ``parts`` equal slices of a fused projection (e.g. GPT-2's ``c_attn``)."""
    width = out_width(module)
    adapter.require(width % parts == 0, f"{path} width {width} does not split into {parts} equal parts")
    return {f"part {i}": width // parts for i in range(parts)}


def uniform_ffn(adapter: ModelAdapter, field: str, sizes: dict[str, int]) -> int:
    """:meth:`~.base.ModelAdapter.uniform` with the usual remedy."""
    return adapter.uniform(field, sizes, remedy="prune every layer by the same ratio (no global ranking)")
