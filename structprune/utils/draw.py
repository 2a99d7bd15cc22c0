"""Pictures of a built :class:`~structprune.DependencyGraph` as adjacency matrices (matplotlib).

Torch-Pruning's ``tp.utils.draw_computational_graph``, ``draw_dependency_graph`` and ``draw_groups``,
with the same arguments, drawn from our trace and channel groups:

- computational graph: one row and column per leaf module (layer) the trace saw; a cell is set
  when one layer's output reaches the other's input (through any number of parameter-free ops);
- dependency graph: one row and column per prunable dimension (a layer's ``out`` or ``in``
  channels, or an axis of a parameter used directly); a cell is set when pruning the row's
  dimension directly forces pruning the column's (a data-flow edge, or a layer's own in/out);
- groups: same rows and columns; a cell is set when the two dimensions lose channels together.

matplotlib is optional (``pip install matplotlib``, or the ``cli`` extra).  Each function writes
``save_as`` and returns ``(figure, axes)``; no global pyplot state is touched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Hashable, Sequence

import torch

from structprune.targets import Target

if TYPE_CHECKING:
    from structprune.graph import DependencyGraph

_MAX_TICK_LABELS = 80


def draw_computational_graph(DG: "DependencyGraph", save_as: Any, title: str = "Computational Graph",
                             figsize: tuple = (16, 16), dpi: int = 200, cmap: Any = None) -> tuple:
    """Layer-to-layer data flow of ``DG`` as a symmetric adjacency matrix, saved to ``save_as``.

    Example::

        DG = structprune.DependencyGraph().build_dependency(model, torch.randn(1, 3, 224, 224))
        fig, ax = structprune.utils.draw_computational_graph(DG, "graph.png")
    """
    modules, edges = _layer_edges(_built(DG, "draw_computational_graph"))
    index = {key: i for i, key in enumerate(modules)}
    matrix = torch.zeros(len(modules), len(modules))
    for a, b in edges:
        if a in index:
            matrix[index[a], index[b]] = matrix[index[b], index[a]] = 1
    labels = [modules[key] for key in modules]
    return _save(matrix, labels, save_as, title, figsize, dpi, cmap, "draw_computational_graph")


def draw_dependency_graph(DG: "DependencyGraph", save_as: Any, title: str = "Group",
                          figsize: tuple = (16, 16), dpi: int = 200, cmap: Any = None) -> tuple:
    """Direct dependencies between prunable dimensions (row triggers column), saved to ``save_as``.

    Example::

        fig, ax = structprune.utils.draw_dependency_graph(DG, "dependencies.png")
    """
    graph = _built(DG, "draw_dependency_graph")
    targets = _targets(graph)
    matrix = torch.zeros(len(targets), len(targets))
    for i, j in _direct_dependencies(graph, targets):
        matrix[i, j] = 1
    return _save(matrix, [_label(t) for t in targets], save_as, title, figsize, dpi, cmap, "draw_dependency_graph")


def draw_groups(DG: "DependencyGraph", save_as: Any, title: str = "Group",
                figsize: tuple = (16, 16), dpi: int = 200, cmap: Any = None) -> tuple:
    """Which prunable dimensions lose channels together (share a group), saved to ``save_as``.

    Example::

        fig, ax = structprune.utils.draw_groups(DG, "groups.png")
    """
    targets = _targets(_built(DG, "draw_groups"))
    matrix = torch.zeros(len(targets), len(targets))
    for i, a in enumerate(targets):
        for j, b in enumerate(targets):
            if a.groups & b.groups:
                matrix[i, j] = 1
    return _save(matrix, [_label(t) for t in targets], save_as, title, figsize, dpi, cmap, "draw_groups")


def _built(DG: "DependencyGraph", caller: str) -> "DependencyGraph":
    if getattr(DG, "trace", None) is None:
        raise ValueError(f"structprune.utils.{caller}: the DependencyGraph has not been built; "
                         "call DG.build_dependency(model, example_inputs) first")
    return DG


def _targets(graph: "DependencyGraph") -> list[Target]:
    """Prunable dimensions: every layer channel dim and every parameter axis with units."""
    return [t for t in graph.targets if t.groups]


def _label(target: Target) -> str:
    if target.is_layer:
        return f"{target.name or 'model'}.{target.dim}"
    return f"{target.qualified_tensor_name}[{target.axis}]"


def _source_key(target: Target) -> Hashable:
    return ("module", id(target.module)) if target.is_layer else ("param", target.qualified_tensor_name)


def _layer_edges(graph: "DependencyGraph") -> tuple[dict[Hashable, str], list[tuple[Hashable, Hashable]]]:
    """Layers in call order (key -> name) and (feeding source, layer) edges through parameter-free ops.

    A source is a layer or a parameter used directly by an op (``("param", qualified name)``).
    """
    modules: dict[Hashable, str] = {}
    feeders: dict[int, set] = {}
    edges: set[tuple[Hashable, Hashable]] = set()
    for node in graph.trace.nodes:
        sources: set = set()
        for value in node.inputs:
            if value.producer is not None:
                producer = value.producer
                sources |= {("module", id(producer.module))} if producer.is_module else feeders[producer.index]
            elif value.origin in ("param", "buffer"):
                sources.add(("param", value.name))
        if node.is_module:
            key = ("module", id(node.module))
            modules.setdefault(key, node.module_name or "model")
            edges |= {(source, key) for source in sources if source != key}
        else:
            feeders[node.index] = sources
    return modules, sorted(edges, key=str)


def _direct_dependencies(graph: "DependencyGraph", targets: Sequence[Target]) -> set[tuple[int, int]]:
    """(i, j): pruning ``targets[i]`` directly forces ``targets[j]``: along a data-flow edge
    (a source's out dim to a consumer's in dim, sharing a group) or within one layer."""
    by_source: dict[Hashable, list[int]] = {}
    for i, t in enumerate(targets):
        by_source.setdefault(_source_key(t), []).append(i)
    pairs = set()
    for members in by_source.values():  # a layer's own dims that share units (norms, depthwise convs)
        pairs |= {(i, j) for i in members for j in members if i != j and targets[i].groups & targets[j].groups}
    for source, consumer in _layer_edges(graph)[1]:
        inputs = _input_dims(targets, by_source.get(consumer, []))
        for i in by_source.get(source, []):
            pairs |= {(i, j) for j in inputs if targets[i].dim == "out" and targets[i].groups & targets[j].groups}
    return pairs


def _input_dims(targets: Sequence[Target], members: list[int]) -> list[int]:
    """A consumer's input channel dims: its ``in`` dim, or its only dim for layers whose input and
    output channels are one dim (norms, PReLU: no separate ``in`` target)."""
    inputs = [j for j in members if targets[j].dim == "in"]
    return inputs or members


def _save(matrix: torch.Tensor, labels: list[str], save_as: Any, title: str | None, figsize: tuple,
          dpi: int, cmap: Any, caller: str) -> tuple:
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(f"structprune.utils.{caller} draws with matplotlib, which is not installed: "
                          "pip install matplotlib (or structprune[cli])") from error
    fig = Figure(figsize=figsize)
    ax = fig.subplots()
    ax.imshow(matrix.numpy(), cmap=cmap if cmap is not None else "Blues", vmin=0, vmax=1)
    if 0 < len(labels) <= _MAX_TICK_LABELS:
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
        ax.set_yticks(range(len(labels)), labels, fontsize=6)
    if title is not None:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(save_as, dpi=dpi)
    return fig, ax
