"""``print_tool``: show what pruning changed in a model (Torch-Pruning's ``tp.utils.print_tool``)."""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from structprune.utils.op_counter import count_ops_and_params, count_params


class print_tool:  # noqa: N801  (Torch-Pruning's name)
    """Record a model before pruning, then print its structure with each changed line as ``old => new``.

    Below the structure come the parameter count before and after, and the MACs too when
    ``before_pruning`` was given ``example_inputs`` (Torch-Pruning prints the structure only).

    Example::

        tp.utils.print_tool.before_pruning(model, example_inputs=torch.randn(1, 3, 224, 224))
        pruner.step()
        text = tp.utils.print_tool.after_pruning(model)   # printed, and returned
    """

    _before_pruning: str | None = None
    _params: int = 0
    _macs: int | None = None
    _example_inputs: Any = None

    @staticmethod
    def before_pruning(model: nn.Module, example_inputs: Any = None) -> None:
        """Remember ``model``'s printout and parameter count (and its MACs on ``example_inputs``)."""
        print_tool._before_pruning = str(model)
        print_tool._params = count_params(model)
        print_tool._example_inputs = example_inputs
        print_tool._macs = None if example_inputs is None else count_ops_and_params(model, example_inputs)[0]

    @staticmethod
    def after_pruning(model: nn.Module, do_print: bool = True) -> str:
        """The recorded printout with changed lines as ``old => new``, then the counts; printed if ``do_print``."""
        if print_tool._before_pruning is None:
            raise ValueError("print_tool.after_pruning: nothing recorded; call "
                             "print_tool.before_pruning(model) before pruning the model")
        lines = []
        for before, after in zip(print_tool._before_pruning.split("\n"), str(model).split("\n")):
            lines.append(before if before == after else f"{before} => {after.lstrip(' ')}")
        lines.append(_change("params", print_tool._params, count_params(model)))
        if print_tool._macs is not None:
            macs = count_ops_and_params(model, print_tool._example_inputs)[0]
            lines.append(_change("MACs", print_tool._macs, macs))
        text = "\n".join(lines) + "\n"
        if do_print:
            print(text)
        print_tool._before_pruning = print_tool._macs = print_tool._example_inputs = None
        return text


def _change(what: str, before: int, after: int) -> str:
    percent = 100.0 * (after - before) / before if before else 0.0
    return f"{what}: {_human(before)} => {_human(after)} ({percent:+.1f}%)"


def _human(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)
