"""The registry of subcommands: ``@command(name, help, arguments)`` on a ``run(args, console)``.

Example::

    @command("hello", "say hello", arguments=lambda parser: parser.add_argument("--name"))
    def run_hello(args, console):
        return {"greeting": f"hello {args.name}"}   # printed by --json
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Callable

Arguments = Callable[[argparse.ArgumentParser], None]
Runner = Callable[..., Any]


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, one-line help, argument declarations and runner."""

    name: str
    help: str
    arguments: Arguments
    run: Runner


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, arguments: Arguments) -> Callable[[Runner], Runner]:
    """Register ``run(args, console) -> dict`` as the subcommand ``name`` (decorator)."""

    def decorator(run: Runner) -> Runner:
        COMMANDS[name] = Command(name, help, arguments, run)
        return run

    return decorator
