"""Prunability benchmark: prune every model of a suite by 50% with the default pruner, no hints.

Each model runs in its own subprocess with a time limit.  A model passes when the pruned model
runs, every output keeps its shape, and both parameters and MACs went down.  Detectors' MACs
are counted with their score and NMS thresholds saturated (restored afterwards), so the per-box
heads of the pruned and unpruned model run on the same number of boxes (see
:mod:`benchmarks.detections`).  Writes
``results/<suite>.json`` and ``results/<suite>.md`` and prints the table.

Examples::

    python -m benchmarks.prunability --suite torchvision --jobs 2
    python -m benchmarks.prunability --suite timm --models resnet18 vit_tiny_patch16_224
    python -m benchmarks.prunability --suite hf --list
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script or with -m

from benchmarks.report import markdown_table, summary_line

RESULTS = Path(__file__).parent / "results"
MARKER = "@@RESULT@@"


def run_one(suite: str, name: str, threads: int, heads: bool = False) -> dict:
    """Run one case in this process and return its row (used by the subprocess)."""
    import torch

    from benchmarks.check import run_case
    from benchmarks.suites import find

    torch.set_num_threads(threads)
    return run_case(find(suite, name), heads).to_dict()


def run_isolated(suite: str, name: str, group: str, timeout: float, threads: int, heads: bool = False) -> dict:
    """Run one case in a fresh interpreter; a crash or timeout becomes a failed row."""
    cmd = [sys.executable, "-m", "benchmarks.prunability", "--suite", suite, "--one", name, "--threads", str(threads)]
    cmd += ["--heads"] if heads else []
    root = Path(__file__).resolve().parent.parent
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=root)
    except subprocess.TimeoutExpired:
        return {"name": name, "group": group, "ok": False, "reason": f"timed out after {timeout:.0f} s"}
    for line in done.stdout.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return {"name": name, "group": group, "ok": False, "reason": f"crashed (exit {done.returncode}): {tail}"[:300]}


def run_suite(suite: str, names: list[str] | None, jobs: int, timeout: float, threads: int,
              heads: bool = False) -> list[dict]:
    from benchmarks.suites import cases

    chosen = [c for c in cases(suite) if not names or c.name in names]
    rows: list[dict] = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(run_isolated, suite, c.name, c.group, timeout, threads, heads) for c in chosen]
        for future in futures:
            row = future.result()
            rows.append(row)
            status = "ok  " if row["ok"] else "FAIL"
            print(f"{status} {row['name']:<40} {row.get('total_s', '')!s:>7} {row['reason']}", flush=True)
    return rows


def merge_rows(previous: Path, rows: list[dict]) -> list[dict]:
    """The rows of an earlier run with these (re-run) models replaced."""
    fresh = {r["name"]: r for r in rows}
    old = json.loads(previous.read_text()) if previous.exists() else []
    merged = [fresh.pop(r["name"], r) for r in old]
    return merged + list(fresh.values())


def write_results(suite: str, rows: list[dict], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{suite}.json").write_text(json.dumps(rows, indent=1) + "\n")
    (out_dir / f"{suite}.md").write_text(markdown_table(suite, rows))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=["torchvision", "timm", "hf"], required=True)
    parser.add_argument("--models", nargs="*", help="only these model names")
    parser.add_argument("--jobs", type=int, default=2, help="models run in parallel (default 2)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per model (default 600)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per model (default 1)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where JSON and Markdown go")
    parser.add_argument("--merge", action="store_true", help="with --models: update those rows of the saved results")
    parser.add_argument("--list", action="store_true", help="list the suite's models and exit")
    parser.add_argument("--heads", action="store_true", help="also remove 50%% of whole attention heads "
                                                              "(results go to <suite>_heads.json/.md)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.one:
        print(MARKER + json.dumps(run_one(args.suite, args.one, args.threads, args.heads)), flush=True)
        return
    if args.list:
        from benchmarks.suites import cases
        print("\n".join(f"{c.name}  ({c.group})" for c in cases(args.suite)))
        return
    rows = run_suite(args.suite, args.models, args.jobs, args.timeout, args.threads, args.heads)
    label = args.suite + ("_heads" if args.heads else "")
    if args.merge:
        rows = merge_rows(args.out / f"{label}.json", rows)
    if not args.models or args.merge:
        write_results(label, rows, args.out)
    print(summary_line(label, rows))


if __name__ == "__main__":
    main()
