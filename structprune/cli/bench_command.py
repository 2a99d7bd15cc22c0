"""``structprune bench MODEL [PRUNED]``: params, MACs and latency side by side.

Latency is timed once, with the models taking turns (see :mod:`structprune.latency.timing`) on
``--device`` in ``--dtype`` at ``--batch-size``: min / median / max, throughput, peak memory and
the speed-up with its spread ("no speed-up" when the spread holds 1.0x).

With one pruned file and nothing else, the unpruned model it was made from is the baseline.
"""

from __future__ import annotations

import argparse
from typing import Any

from structprune.cli.arguments import add_common_arguments
from structprune.cli.commands import command
from structprune.cli.console import Console
from structprune.cli.errors import CliError
from structprune.cli.inputs import check_forward, choose_shape, example_inputs
from structprune.cli.measure import compare_widths
from structprune.cli.models import LoadedModel, load_model
from structprune.cli.plot import plot_widths
from structprune.cli.report import add_timing_arguments, metric_table, profile, strip_widths, width_table
from structprune.cli.timing import add_placement_arguments, timing_report


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="torchvision:NAME, timm:NAME, hf:DIR, FILE.py:FUNCTION or a pruned file")
    parser.add_argument("pruned", nargs="?", help="a second model to compare with (e.g. `prune --out` file)")
    add_timing_arguments(parser)
    add_placement_arguments(parser)
    add_common_arguments(parser)


@command("bench", "measure params, MACs, latency, throughput and memory of one model or two side by side",
         arguments)
def run_bench(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    models = [load_model(args.model, args.seed)]
    if args.pruned:
        models.append(load_model(args.pruned, args.seed))
    elif models[0].record:
        models.insert(0, load_model(models[0].spec, args.seed))
    if args.plot and len(models) < 2:
        raise CliError("--plot compares two models: give MODEL and PRUNED (or a pruned file)")
    shape = choose_shape(args.input_shape, *models)
    profiles = [measure(loaded, shape, args, console) for loaded in models]
    names = [loaded.label for loaded in models]
    timing = timing_report(console, names, [loaded.model for loaded in models],
                           example_inputs(models[0], shape, args.seed)[0], args)
    for profile_, row in zip(profiles, timing["models"]):  # each model timed once: in the alternating run
        profile_["latency_ms"] = round(row["median_ms"], 4)
    metric_table(console, "benchmark", names, profiles, latency_label=f"latency ({timing['device']}, median)")
    result: dict[str, Any] = {"input_shape": profiles[0]["input_shape"],
                              "models": [{"name": n, **strip_widths(p)} for n, p in zip(names, profiles)]}
    if len(profiles) == 2:
        result["layers"] = compare_widths(profiles[0]["widths"], profiles[1]["widths"])
        width_table(console, result["layers"])
        if args.plot:
            plot_widths(result["layers"], args.plot, f"{names[0]} vs {names[1]}: output channels per layer")
    result["timing"] = timing
    result["plot"] = args.plot
    return result


def measure(loaded: LoadedModel, shape: tuple[int, ...] | None, args: argparse.Namespace,
            console: Console) -> dict[str, Any]:
    inputs, used = example_inputs(loaded, shape, args.seed)
    check_forward(loaded, inputs, used)
    return {**profile(loaded, inputs, args, console, timed=False), "input_shape": list(used)}
