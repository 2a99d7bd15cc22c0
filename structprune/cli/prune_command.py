"""``structprune prune MODEL (--ratio R | --speedup S | --target-params P) --out PATH``."""

from __future__ import annotations

import argparse
import copy
import fnmatch
from typing import Any

import torch.nn as nn

from structprune.cli import arguments as types
from structprune.cli.calibration import LOSSES, accumulate_gradients, calibration_batches, record_activations
from structprune.cli.checkpoint_prune import run_checkpoint_prune, streams_checkpoint
from structprune.cli.commands import command
from structprune.cli.console import Console
from structprune.cli.errors import CliError
from structprune.cli.inputs import check_forward, choose_shape, example_inputs, max_difference
from structprune.cli.measure import compare_widths
from structprune.cli.models import LoadedModel, load_model, save_pruned
from structprune.cli.plot import plot_widths
from structprune.cli.report import add_timing_arguments, metric_table, profile, strip_widths, width_table
from structprune.cli.timing import add_placement_arguments, latency_options, timing_report

_COPY_LIMIT = 4 << 30  # a model up to this size is copied to time the pruned one against, in turns

# command-line name -> name in structprune.importance's registry
IMPORTANCES = {"l1": "l1", "l2": "l2", "taylor": "taylor", "hessian": "hessian", "lamp": "lamp",
               "fpgm": "fpgm", "bn": "bn_scale", "random": "random", "activation": "activation"}


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="torchvision:NAME, timm:NAME, hf:DIR, FILE.py:FUNCTION or a pruned file")
    goal = parser.add_mutually_exclusive_group(required=True)
    goal.add_argument("--ratio", type=types.ratio, help="fraction of every group's channels to remove, in (0, 1)")
    goal.add_argument("--speedup", type=types.speedup, help="prune until MACs (or, with --measure latency, the "
                      "latency on --device) fall by this factor (> 1)")
    goal.add_argument("--target-latency", type=types.count, metavar="MS", help="prune until one forward takes "
                      "MS milliseconds on --device (implies --measure latency)")
    goal.add_argument("--target-params", type=types.count, metavar="P", help="prune until at most P params (2.5M)")
    parser.add_argument("--measure", choices=("macs", "latency"), default="macs",
                        help="what --speedup counts: MACs (default) or latency timed on --device in --dtype at "
                        "--batch-size (a per-layer latency table is built and cached first)")
    parser.add_argument("--importance", default="l2", help=f"criterion: {', '.join(IMPORTANCES)} (default l2)")
    parser.add_argument("--global", dest="global_pruning", action="store_true",
                        help="rank all groups together (non-uniform widths)")
    parser.add_argument("--round-to", type=types.positive_int, metavar="N", help="keep multiples of N channels "
                        "(with --speedup / --target-params the default is the device's kernel width, 8 on CPU; "
                        "1 turns rounding off)")
    parser.add_argument("--ignore", nargs="+", action="extend", default=[], metavar="PATTERN",
                        help="leave these modules' output channels alone (glob on names, e.g. 'layer4.*')")
    parser.add_argument("--head-ratio", type=types.ratio, metavar="R", help="also remove this fraction of whole "
                        "attention heads")
    parser.add_argument("--calib", metavar="DATA", help="inputs for taylor/hessian gradients and activation "
                        "norms: random, a .pt tensor file, an image directory or (hf:DIR) a .txt file of texts")
    parser.add_argument("--calib-batches", type=types.positive_int, default=8, help="calibration batches per step")
    parser.add_argument("--steps", type=types.positive_int, default=1, help="reach the goal in K pruning steps")
    parser.add_argument("--out", required=True, help="where to save the pruned model (structprune.save format); for "
                        "hf:DIR, a directory (no .pt suffix) gets a Hugging Face checkpoint pruned shard by shard")
    add_timing_arguments(parser)
    add_placement_arguments(parser)
    types.add_common_arguments(parser)


@command("prune", "prune a model and save it; report params, MACs, latency and size before and after", arguments)
def run_prune(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    if streams_checkpoint(args):
        return run_checkpoint_prune(args, console)
    importance = make_importance(args.importance)
    needs_gradients = bool(getattr(importance, "needs_gradients", False))
    needs_data = needs_gradients or args.importance == "activation"
    if needs_data and not args.calib:
        need = "gradients" if needs_gradients else "calibration data"
        raise CliError(f"--importance {args.importance} needs {need}: pass --calib random, a .pt tensor file, "
                       "an image directory or (hf:DIR) a .txt file of texts")
    loaded = load_model(args.model, args.seed)
    inputs, shape = example_inputs(loaded, choose_shape(args.input_shape, loaded), args.seed)
    check_forward(loaded, inputs, shape)
    ignored = ignored_modules(loaded.model, args.ignore)
    before = profile(loaded, inputs, args, console, timed=False)
    original = baseline_copy(loaded.model)
    if args.target_params is not None and args.target_params >= before["params"]:
        raise CliError(f"--target-params {args.target_params:.0f} is not below the model's {before['params']} params")
    batches = calibration_batches(args.calib, loaded, shape, args.calib_batches) if needs_data else []
    prune_model(loaded.model, inputs, dict(importance=importance, ignored_layers=ignored), batches, args, console)
    outputs = check_forward(loaded, inputs, shape)
    record = {"spec": loaded.spec, "input_shape": list(shape), "importance": args.importance}
    save_pruned(loaded.model, args.out, record)
    reloaded = load_model(args.out, args.seed)
    difference = max_difference(check_forward(reloaded, inputs, shape), outputs)
    after = profile(reloaded, inputs, args, console, timed=False)
    timing = time_before_and_after(console, loaded, original, reloaded, inputs, (before, after), args)
    return report(loaded, shape, before, after, difference, args, console, timing)


def baseline_copy(model: nn.Module) -> nn.Module | None:
    """A copy of the unpruned ``model`` to time the pruned one against, in turns (``None`` when
    its tensors take more than ``_COPY_LIMIT`` bytes: the two are then timed one after the other)."""
    size = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    return copy.deepcopy(model) if size <= _COPY_LIMIT else None



def time_before_and_after(console: Console, loaded: LoadedModel, original: nn.Module | None, reloaded: LoadedModel,
                          inputs: Any, profiles: tuple[dict, dict], args: argparse.Namespace) -> dict[str, Any]:
    """Time the original and the pruned model in turns on ``--device`` in ``--dtype`` at
    ``--batch-size`` (min / median / max, the speed-up's spread and verdict) and put each median
    into its profile; without a copy of the original, time them one after the other on the CPU."""
    if original is None:
        from structprune.cli.measure import latency_ms

        console.note("the model is too large to keep a copy to time against: timed one after the other")
        for profile_, model in zip(profiles, (loaded.model, reloaded.model)):
            profile_["latency_ms"] = round(latency_ms(model, inputs, warmup=args.warmup, runs=args.runs), 4)
        return {"device": "cpu", "alternating": False}
    timing = timing_report(console, ["original", "pruned"], [original, reloaded.model], inputs, args)
    for profile_, row in zip(profiles, timing["models"]):
        profile_["latency_ms"] = round(row["median_ms"], 4)
    return {**timing, "alternating": True}


def make_importance(name: str):
    """The criterion for a command-line name (or a one-line error listing the choices)."""
    from structprune.importance import create

    if name not in IMPORTANCES:
        raise CliError(f"unknown importance {name!r}: choose from {', '.join(IMPORTANCES)}")
    return create(IMPORTANCES[name])


def ignored_modules(model: nn.Module, patterns: list[str]) -> list[nn.Module]:
    """Modules whose qualified names match a glob pattern (each pattern must match something)."""
    names = [n for n, _ in model.named_modules() if n]
    found = []
    for pattern in patterns:
        matched = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not matched:
            raise CliError(f"--ignore {pattern!r} matches no module; names look like {', '.join(names[:4])}")
        found += [model.get_submodule(n) for n in matched]
    return found


def prune_model(model: nn.Module, inputs: Any, options: dict[str, Any], batches: list, args: argparse.Namespace,
                console: Console) -> None:
    """Build the pruner (one trace) with ``options`` (importance, ignored layers) and the
    command-line goal, then run its steps, refreshing gradients before each."""
    from structprune.pruner import BasePruner

    options.update(global_pruning=args.global_pruning, round_to=args.round_to, iterative_steps=args.steps,
                   pruning_ratio=args.ratio, speedup=args.speedup, target_params=args.target_params,
                   prune_num_heads=True if args.head_ratio is not None else None,  # None: a target removes heads
                   head_pruning_ratio=args.head_ratio or 0.0,
                   keep_config_expressible=False)  # saved with structprune.save, which needs no config
    options.update(latency_options(args, console))
    with console.module_progress(model, "tracing"):
        pruner = BasePruner(model, inputs, **options)
    loss = args.importance if args.importance in LOSSES else "taylor"

    def calibration(items):
        return console.progress(items, desc="calibration")

    for _ in console.progress(range(args.steps), desc="pruning"):
        if batches and args.importance == "activation":
            record_activations(model, batches, options["importance"], calibration)
        elif batches:
            accumulate_gradients(model, batches, options["importance"], loss, calibration)
        pruner.step()
    model.zero_grad(set_to_none=True)
    verification = getattr(pruner._target, "verification", None)
    if verification is not None:
        console.note(f"measured on {options['device']} ({verification.speedup.verdict}): {verification.summary()}")


def report(loaded: LoadedModel, shape: tuple[int, ...], before: dict, after: dict, difference: float,
           args: argparse.Namespace, console: Console, timing: dict[str, Any]) -> dict[str, Any]:
    """Print the before/after and width tables, draw the plot; return the JSON result."""
    layers = compare_widths(before["widths"], after["widths"])
    if (after["params"], after["macs"]) == (before["params"], before["macs"]):
        console.warn("nothing was pruned: no group could shrink under these options (e.g. --round-to above a "
                     "group's size, everything ignored, or a criterion with no scores for this model, such as "
                     "bn without BatchNorm layers)")
    metric_table(console, f"{loaded.label} pruned ({args.importance})", ["before", "after"], [before, after],
                 latency_label=f"latency ({timing['device']}, median)")
    width_table(console, layers)
    if args.plot:
        plot_widths(layers, args.plot, f"{loaded.label}: output channels per layer")
    console.note(f"saved to {args.out}; reloaded, its outputs differ by at most {difference:.3g}")
    return {"model": loaded.label, "spec": loaded.spec, "input_shape": list(shape), "importance": args.importance,
            "before": strip_widths(before), "after": strip_widths(after), "layers": layers, "out": args.out,
            "reload_max_abs_diff": difference, "plot": args.plot, "timing": timing}
