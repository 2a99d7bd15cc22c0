"""Run every peer example on Torch-Pruning and on structprune and put the results side by side.

Each (example, library) pair runs in its own child process with a timeout: forked from this
process after the heavy imports (see ``launch``), or with ``--spawn`` as ``python -m
benchmarks.peer_examples.<script> --lib <library> ...`` from the repository root; either way
this checkout's ``structprune`` is the one imported. A run succeeds when the script exits 0 and
prints its result line; otherwise the table shows the last line of its error output.

The examples are written once, as a Torch-Pruning 1.6 user writes them, and are not changed for
structprune. "more pruned" compares parameters left: structprune's count must be at most
Torch-Pruning's wherever Torch-Pruning runs. Writes ``results/peer_examples.json`` and
``results/peer_examples.md``.

Example::

    python -m benchmarks.peer_examples --jobs 2 --timeout 240
    python -m benchmarks.peer_examples --cases 'torchvision_models resnet18' hf_bert
    python -m benchmarks.peer_examples --peer-from benchmarks/results/peer_examples.json  # rerun structprune only
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.peer_examples._common import LIBRARIES, RESULT_TAG
from benchmarks.peer_examples.cases import CASES, QUICK, Case
from benchmarks.peer_examples.launch import ChildResult, run_children

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
LABELS = {"torch_pruning": "Torch-Pruning", "structprune": "structprune"}


@dataclass
class Outcome:
    """One library's run of one example (JSON-ready)."""

    ok: bool = False
    error: str = ""
    seconds: float = 0.0
    result: dict = field(default_factory=dict)


def outcome_of(child: ChildResult, timeout: float) -> Outcome:
    """A run's outcome from what its child printed: its result line, or its last error line."""
    if child.returncode is None:
        return Outcome(error=f"timed out after {timeout:.0f} s", seconds=child.seconds)
    lines = [line for line in child.output.splitlines() if line.startswith(RESULT_TAG)]
    if child.returncode == 0 and lines:
        return Outcome(ok=True, seconds=child.seconds, result=json.loads(lines[-1][len(RESULT_TAG):]))
    return Outcome(error=last_error_line(child.output), seconds=child.seconds)


def last_error_line(text: str) -> str:
    """The last non-empty line of a traceback (the exception and its message), shortened."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[-1] if lines else "exited without a result"
    return line if len(line) <= 300 else line[:297] + "..."


def more_pruned(peer: Outcome, ours: Outcome) -> bool | None:
    """Whether structprune left at most as many parameters as Torch-Pruning; None where that is no
    comparison: the peer did not run, or it changed the model's outputs (it pruned the classes)."""
    if not peer.ok or not peer.result["shapes_ok"]:
        return None
    return ours.ok and ours.result["after"]["params"] <= peer.result["after"]["params"]


def select(patterns: list[str] | None, quick: bool) -> list[Case]:
    cases = QUICK if quick else CASES
    if not patterns:
        return cases
    return [c for c in cases if any(fnmatch.fnmatch(c.name, p) or c.name.startswith(p) for p in patterns)]


def earlier_outcomes(path: Path | None, library: str) -> dict[str, Outcome]:
    """One library's outcomes from an earlier run's JSON, by case name (none without a path)."""
    if path is None:
        return {}
    rows = json.loads(path.read_text())["rows"]
    return {row["case"]: Outcome(**row[library]) for row in rows if row[library]["error"] != "not run"}


def run_all(cases: list[Case], libraries: list[str], timeout: float, jobs: int, progress: bool = False,
            reused: dict[str, dict[str, Outcome]] | None = None, mode: str = "fork") -> list[dict]:
    """Every (case, library) pair, ``jobs`` at a time, except those ``reused[lib][case]`` gives; rows in case order."""
    reused = reused or {}
    pairs = [(case, lib) for case in cases for lib in libraries if case.name not in reused.get(lib, {})]
    runs = [(case.script, ["--lib", lib, *case.args]) for case, lib in pairs]

    def done(index: int, child: ChildResult) -> None:
        if progress:
            outcome = outcome_of(child, timeout)
            print(f"{pairs[index][0].name} on {LABELS[pairs[index][1]]}: {'ok' if outcome.ok else outcome.error} "
                  f"({outcome.seconds:.0f} s)", file=sys.stderr, flush=True)

    children = run_children(runs, timeout, jobs, mode, on_done=done)
    outcomes = [outcome_of(child, timeout) for child in children]
    by_pair = dict(zip(pairs, outcomes))
    rows = []
    for case in cases:
        sides = {lib: by_pair.get((case, lib), reused.get(lib, {}).get(case.name, Outcome(error="not run")))
                 for lib in LIBRARIES}
        rows.append({"case": case.name, "command": f"python -m benchmarks.peer_examples.{case.script} "
                     + " ".join(case.args), **{lib: asdict(o) for lib, o in sides.items()},
                     "more_pruned": more_pruned(sides["torch_pruning"], sides["structprune"])})
    return rows


def summary(rows: list[dict]) -> dict:
    """Counts for the closing line: runs per library and where structprune prunes at least as much."""
    peer_ok = [r for r in rows if r["torch_pruning"]["ok"] and r["torch_pruning"]["result"]["shapes_ok"]]
    return {"cases": len(rows),
            **{f"{lib}_runs": sum(r[lib]["ok"] for r in rows) for lib in LIBRARIES},
            **{f"{lib}_shapes_ok": sum(r[lib]["ok"] and r[lib]["result"]["shapes_ok"] for r in rows)
               for lib in LIBRARIES},
            "peer_runs_and_structprune_prunes_as_much": sum(bool(r["more_pruned"]) for r in peer_ok),
            "peer_runs": len(peer_ok)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="*", help="case names or globs (default: all); see --list")
    parser.add_argument("--quick", action="store_true", help="only the two quick cases")
    parser.add_argument("--libs", nargs="*", default=list(LIBRARIES), choices=LIBRARIES)
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds per run")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time")
    parser.add_argument("--spawn", action="store_true", help="a fresh interpreter per run (imports every time) "
                        "instead of forking children of one process that imported everything once")
    parser.add_argument("--out", type=Path, default=RESULTS / "peer_examples.json")
    parser.add_argument("--peer-from", type=Path, help="take Torch-Pruning's outcomes from this earlier JSON "
                        "instead of running it again (the peer does not change when structprune does)")
    parser.add_argument("--ours-from", type=Path, help="likewise for structprune's outcomes (for cases not in --rerun)")
    parser.add_argument("--rerun", nargs="*", default=[], help="case names or globs run again despite --peer-from/"
                        "--ours-from")
    parser.add_argument("--list", action="store_true", help="print the case names and exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    from benchmarks.peer_examples.table import markdown_table

    args = parse_args(argv)
    cases = select(args.cases, args.quick)
    if args.list:
        print("\n".join(case.name for case in cases))
        return
    start, load = time.perf_counter(), os.getloadavg()[0]
    rerun = {case.name for case in select(args.rerun, False)} if args.rerun else set()
    reused = {lib: {name: o for name, o in earlier_outcomes(path, lib).items() if name not in rerun}
              for lib, path in (("torch_pruning", args.peer_from), ("structprune", args.ours_from))}
    rows = run_all(cases, args.libs, args.timeout, args.jobs, progress=True, reused=reused,
                   mode="spawn" if args.spawn else "fork")
    counts = summary(rows)
    note = (f"{time.perf_counter() - start:.0f} s wall, {args.jobs} runs at a time, 1 torch thread each"
            f"{'; earlier outcomes reused for cases not rerun' if args.peer_from or args.ours_from else ''}; "
            f"1-minute load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    text = markdown_table(rows, counts, note)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": counts, "note": note, "rows": rows}, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(text)
    print(text)
