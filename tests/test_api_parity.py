"""Torch-Pruning 1.6.1's public API, walked name by name and compared with ours.

For every public name of ``tp.*``, ``tp.pruner.*``, ``tp.pruner.function.*``, ``tp.importance.*``,
``tp.utils.*`` (and ``tp.utils.benchmark.*``), ``tp.dependency.*``, ``tp.serialization.*`` and every
public method of ``DependencyGraph``, ``Group``, ``Dependency``, ``Node``, the pruners, the layer
pruner base and the importance classes, structprune must have the same name with a compatible
signature: every parameter Torch-Pruning accepts by name is accepted by ours (by name or
``**kwargs``), Torch-Pruning's required parameters and the next ``POSITIONAL_OPTIONALS`` come first in
ours in the same order, and ours requires nothing Torch-Pruning does not.  Every deliberate difference
is a row of the table in ``docs/COMPATIBILITY.md``; this test reads that table, so a gap without a
row, or a row whose gap is gone, fails.  ``tests/test_api_parity_calls.py`` calls a representative subset.
"""

from __future__ import annotations

import inspect
import re
import types
from pathlib import Path

import pytest

tp_peer = pytest.importorskip("torch_pruning")

import structprune  # noqa: E402

TABLE = Path(__file__).resolve().parents[1] / "docs" / "COMPATIBILITY.md"

# TEMPORARY: names that the api-core branch adds (tp.pruner.function, BasePruningFunc, graph, group and
# pruner methods). The integrator deletes this set once api-core is merged; every name must then exist.
PENDING_API_CORE: set[str] = set()


MODULES = ["", "pruner", "pruner.function", "importance", "utils", "utils.benchmark", "dependency", "serialization"]
CLASSES = ["DependencyGraph", "Group", "Dependency", "Node", "pruner.BasePruner", "pruner.BNScalePruner",
           "pruner.GroupNormPruner", "pruner.GrowingRegPruner", "pruner.BasePruningFunc"]
# Torch-Pruning's parameters a call may pass by position: the required ones and this many more
# (``count_ops_and_params(model, x, True)``, ``measure_latency(model, x, 100, 10)``); later ones by name.
POSITIONAL_OPTIONALS = 2
# standard-library helpers that Torch-Pruning's modules import (``tp.importance.OrderedDict``): not its API
_STDLIB = ("copy", "collections", "contextlib", "typing", "abc", "functools", "warnings", "enum", "math", "random")


def resolve(root, dotted: str):
    """``root.a.b`` for ``"a.b"`` (``None`` if some part is missing)."""
    obj = root
    for part in filter(None, dotted.split(".")):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def public_names(module) -> list[str]:
    names = []
    for name in dir(module):
        value = getattr(module, name)
        if name.startswith("_"):
            continue
        if isinstance(value, types.ModuleType) and not value.__name__.startswith("torch_pruning"):
            continue
        if (getattr(value, "__module__", None) or "").split(".")[0] in _STDLIB:
            continue
        names.append(name)
    return names


def class_members(cls) -> list[str]:
    """Public methods and properties defined by ``cls`` itself, plus ``__call__`` (importance)."""
    return [n for n, v in vars(cls).items()
            if (not n.startswith("_") or n == "__call__") and (callable(v) or isinstance(v, (property, staticmethod)))]


def _signature(obj):
    try:
        return inspect.signature(obj)
    except (TypeError, ValueError):
        return None


def signature_gap(theirs, ours) -> str | None:
    """Why a call written for ``theirs`` may fail on ``ours`` (``None`` if it cannot)."""
    t_sig, o_sig = _signature(theirs), _signature(ours)
    if t_sig is None or o_sig is None:
        return None
    kinds = inspect.Parameter
    t_params = [p for p in t_sig.parameters.values() if p.name != "self"]
    o_params = [p for p in o_sig.parameters.values() if p.name != "self"]
    o_by_name = {p.name: p for p in o_params if p.kind not in (kinds.POSITIONAL_ONLY, kinds.VAR_POSITIONAL)}
    o_var_kw = any(p.kind is kinds.VAR_KEYWORD for p in o_params)
    o_var_pos = any(p.kind is kinds.VAR_POSITIONAL for p in o_params)
    for p in t_params:
        if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY) and p.name not in o_by_name and not o_var_kw:
            return f"no parameter {p.name!r}"
        if p.kind is kinds.VAR_KEYWORD and not o_var_kw:
            return "no **kwargs"
        if p.kind is kinds.VAR_POSITIONAL and not o_var_pos:
            return "no *args"
    t_pos = [p.name for p in t_params if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)]
    t_pos = t_pos[:sum(p.default is kinds.empty for p in t_params) + POSITIONAL_OPTIONALS]
    o_pos = [p.name for p in o_params if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)]
    if o_pos[:len(t_pos)] != t_pos and not (o_var_pos and o_pos == t_pos[:len(o_pos)]):
        return f"positional order {o_pos} vs {t_pos}"
    t_names = {p.name for p in t_params}
    required = [p.name for p in o_params if p.default is kinds.empty and p.name not in t_names
                and p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)]
    return f"requires {required}" if required else None


def find_gaps() -> dict[str, str]:
    """``"tp.x.y" -> "absent" | "signature"`` for every public name of the peer that we lack."""
    gaps: dict[str, str] = {}

    def compare(path: str, theirs, ours) -> None:
        if ours is None:
            gaps[path] = "absent"
        elif callable(theirs) and callable(ours) and signature_gap(theirs, ours):
            gaps[path] = "signature"

    for dotted in MODULES:
        theirs, ours = resolve(tp_peer, dotted), resolve(structprune, dotted)
        prefix = "tp." + dotted if dotted else "tp"
        if ours is None:
            gaps[prefix] = "absent"
            continue
        for name in public_names(theirs):
            compare(f"{prefix}.{name}", getattr(theirs, name), getattr(ours, name, None))
    for dotted in CLASSES + [f"importance.{n}" for n in public_names(tp_peer.importance) if n.endswith("Importance")]:
        theirs, ours = resolve(tp_peer, dotted), resolve(structprune, dotted)
        if ours is None:
            continue  # reported above as a missing name
        for name in class_members(theirs):
            compare(f"tp.{dotted}.{name}", getattr(theirs, name), getattr(ours, name, None))
    return gaps


def table_rows() -> list[list[str]]:
    """Rows of the table in docs/COMPATIBILITY.md: ``| `name`, `name` | kind | difference | reason | path |``
    (``\\|`` is a pipe inside a cell)."""
    rows = []
    for line in TABLE.read_text().splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if cells and cells[0].startswith("`"):
            rows.append(cells)
    return rows


def documented_gaps() -> dict[str, str]:
    return {name: cells[1] for cells in table_rows() for name in re.findall(r"`([^`]+)`", cells[0])}


GAPS = find_gaps()
DOCUMENTED = documented_gaps()


def test_every_gap_is_documented():
    unexplained = {name: kind for name, kind in GAPS.items()
                   if DOCUMENTED.get(name) != kind and name not in PENDING_API_CORE}
    details = {name: signature_gap(resolve(tp_peer, name[3:]), resolve(structprune, name[3:]))
               for name, kind in unexplained.items() if kind == "signature"}
    assert not unexplained, f"undocumented differences from Torch-Pruning: {unexplained} {details}"


def test_every_documented_gap_is_real():
    """A row for an absent or incompatible name must go when the name arrives."""
    stale = {name: kind for name, kind in DOCUMENTED.items()
             if kind in ("absent", "signature") and GAPS.get(name) != kind}
    assert not stale, f"docs/COMPATIBILITY.md lists gaps that no longer exist: {stale}"


def test_table_rows_are_complete():
    kinds = set(DOCUMENTED.values())
    assert kinds <= {"absent", "signature", "behaviour"}, kinds
    rows = table_rows()
    assert len(rows) > 10
    for cells in rows:
        assert len(cells) == 5 and all(cells), f"docs/COMPATIBILITY.md row without its five cells: {cells}"


def test_the_walk_sees_the_whole_surface():
    """Guard against a walk that silently checks nothing."""
    walked = sum(len(public_names(resolve(tp_peer, d))) for d in MODULES)
    assert walked > 120
    assert "tp.utils.benchmark.measure_latency" not in GAPS and "tp.importance.GroupTaylorImportance" not in GAPS


@pytest.mark.parametrize("theirs, ours, gap", [
    ("def f(model, example_inputs, layer_wise=False)", "def f(model, example_inputs, layer_wise=False, **kw)", None),
    ("def f(model, example_inputs, layer_wise=False)",
     "def f(model, example_inputs, forward_fn=None, layer_wise=False)",
     "positional order"),
    ("def f(a, b=1)", "def f(a, **kw)", "positional order"),
    ("def f(a, b=1, c=2, d=3)", "def f(a, b=1, c=2, **kw)", None),
    ("def f(a, *, b=1)", "def f(a)", "no parameter 'b'"),
    ("def f(a)", "def f(a, c)", "requires ['c']"),
    ("def f(a, **kw)", "def f(a, b=2)", "no **kwargs"),
])
def test_signature_rule(theirs, ours, gap):
    scope: dict = {}
    exec(theirs + ": pass", scope)
    t = scope["f"]
    exec(ours + ": pass", scope)
    found = signature_gap(t, scope["f"])
    assert (found is None) if gap is None else (found is not None and found.startswith(gap))
