"""``structprune inspect MODEL``: the prunable groups, what pins the rest, params and MACs per layer."""

from __future__ import annotations

import argparse
from typing import Any

import torch
import torch.nn as nn

from structprune.cli.arguments import add_common_arguments
from structprune.cli.commands import command
from structprune.cli.console import Console, human
from structprune.cli.inputs import check_forward, choose_shape, example_inputs
from structprune.cli.models import load_model
from structprune.graph import DependencyGraph
from structprune.pruner.groups import GroupRecord, find_groups
from structprune.pruner.options import build_options

UNIT_NAMES = {"channel": "channel", "head": "head", "head_dim": "head dim"}


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="torchvision:NAME, timm:NAME, hf:DIR, FILE.py:FUNCTION or a pruned file")
    add_common_arguments(parser)


@command("inspect", "show the prunable groups, what pins channels, and params/MACs per layer", arguments)
def run_inspect(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    loaded = load_model(args.model, args.seed)
    inputs, shape = example_inputs(loaded, choose_shape(args.input_shape, loaded), args.seed)
    check_forward(loaded, inputs, shape)
    with console.module_progress(loaded.model, "tracing"):
        graph = DependencyGraph().build_dependency(loaded.model, inputs)
    groups = [describe_group(graph, r) for r in find_groups(graph, build_options())]
    pinned = graph.pin_reasons()
    unhandled = [node.describe() for node in graph.unhandled]
    layers = layer_costs(loaded.model, inputs)
    result = {"model": loaded.label, "input_shape": list(shape), "params": layers[0]["params"],
              "macs": layers[0]["macs"], "groups": groups, "pinned": pinned, "unhandled": unhandled,
              "layers": layers[1:]}
    show(console, result)
    return result


def describe_group(graph: DependencyGraph, record: GroupRecord) -> dict[str, Any]:
    """Root, kind, unit count, channels per unit and coupled layers / tensors of one group."""
    group = record.group(graph)
    members = group.member_targets()
    layers = sorted({f"{t.name or 'model'}.{t.dim}" for t in members if t.is_layer})
    tensors = sorted({t.qualified_tensor_name for t in members if not t.is_layer})
    return {"root": record.root.name or "model", "kind": record.kind, "units": len(group.units),
            "channels_per_unit": channels_per_unit(graph, record.root, group.units),
            "layers": layers, "tensors": tensors}


def channels_per_unit(graph: DependencyGraph, root, units: list[int]) -> int:
    """How many of the root's channels one unit spans (1 for a channel, head_dim for a head)."""
    rows = root.classes[root.alive_rows(graph.dead)]
    covered = torch.isin(rows, torch.tensor(units, dtype=torch.long)).any(1)
    return max(1, int(covered.sum()) // max(1, len(units)))


def layer_costs(model: nn.Module, inputs: Any) -> list[dict[str, Any]]:
    """The whole model first, then every leaf module with parameters or MACs."""
    from structprune.utils import count_ops_per_module

    table = count_ops_per_module(model, inputs)
    modules = dict(model.named_modules())
    rows = [{"name": "model", "type": type(model).__name__, "macs": table[""][0], "params": table[""][1]}]
    for name, (macs, params) in table.items():
        if name and not any(True for _ in modules[name].children()) and (macs or params):
            rows.append({"name": name, "type": type(modules[name]).__name__, "macs": macs, "params": params})
    return rows


def unit_label(group: dict[str, Any]) -> str:
    k, kind = group["channels_per_unit"], UNIT_NAMES.get(group["kind"], group["kind"])
    if kind == "channel":
        return "channel" if k == 1 else f"channel ({k} elements)"
    return f"{kind} ({k} channels)"


def _listed(names: list[str], limit: int = 3) -> str:
    return ", ".join(names[:limit]) + (f" +{len(names) - limit}" if len(names) > limit else "")


def show(console: Console, result: dict[str, Any]) -> None:
    console.note(f"{result['model']} on input {result['input_shape']}: {human(result['params'])} params, "
                 f"{human(result['macs'])} MACs, {len(result['groups'])} prunable groups")
    console.table("prunable groups", ["root", "units", "unit", "coupled layers", "layers"],
                  [[g["root"], g["units"], unit_label(g), len(g["layers"]) + len(g["tensors"]),
                    _listed(g["layers"] + g["tensors"])] for g in result["groups"]])
    console.table("pinned (not prunable)", ["layer dim", "why"],
                  [[name, "; ".join(sorted(set(reasons)))] for name, reasons in result["pinned"].items()])
    if result["unhandled"]:
        console.table("ops without a channel rule (their dims are pinned)", ["op"],
                      [[op] for op in result["unhandled"]])
    console.table("params and MACs per layer", ["layer", "type", "params", "MACs"],
                  [[r["name"], r["type"], human(r["params"]), human(r["macs"])] for r in result["layers"]])
