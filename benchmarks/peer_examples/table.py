"""The side-by-side markdown table of the peer examples (pure formatting, nothing runs here)."""

from __future__ import annotations

HEADER = ("| example | params / MACs before | Torch-Pruning 1.6: params / MACs after | outputs | "
          "structprune: params / MACs after | outputs | prunes as much |\n|---|---|---|---|---|---|---|")


def _millions(count: int) -> str:
    return f"{count / 1e6:.2f} M" if count >= 1e5 else f"{count / 1e3:.1f} K"


def _cell(side: dict) -> tuple[str, str]:
    """(params/MACs after, output check) for one library, or its error."""
    if not side["ok"]:
        error = side["error"].replace("|", "\\|")
        return f"**fails**: {error}", "-"
    after = side["result"]["after"]
    return f"{_millions(after['params'])} / {_millions(after['macs'])}", "same" if side["result"]["shapes_ok"] else "**changed**"


def _before(row: dict) -> str:
    for lib in ("structprune", "torch_pruning"):
        if row[lib]["ok"]:
            before = row[lib]["result"]["before"]
            return f"{_millions(before['params'])} / {_millions(before['macs'])}"
    return "-"


def table_row(row: dict) -> str:
    peer, peer_outputs = _cell(row["torch_pruning"])
    ours, our_outputs = _cell(row["structprune"])
    verdict = {None: "-", True: "yes", False: "**no**"}[row["more_pruned"]]
    return f"| {row['case']} | {_before(row)} | {peer} | {peer_outputs} | {ours} | {our_outputs} | {verdict} |"


def markdown_table(rows: list[dict], counts: dict, note: str) -> str:
    """The whole report: the table, then the counts and how it was run."""
    lines = [HEADER, *map(table_row, rows), ""]
    lines.append(f"Runs: Torch-Pruning {counts['torch_pruning_runs']}/{counts['cases']}, structprune "
                 f"{counts['structprune_runs']}/{counts['cases']}; outputs as expected: Torch-Pruning "
                 f"{counts['torch_pruning_shapes_ok']}, structprune {counts['structprune_shapes_ok']}. Where "
                 f"Torch-Pruning runs and keeps the outputs ({counts['peer_runs']}), structprune runs and leaves at "
                 f"most as many parameters in {counts['peer_runs_and_structprune_prunes_as_much']}. \"prunes as "
                 f"much\" is \"-\" where Torch-Pruning fails or changes the model's output shape.")
    lines.append(f"Parameters are unique parameter elements; MACs are half of `torch.utils.flop_counter`'s FLOPs "
                 f"for one forward, counted the same way for both libraries. {note}.")
    return "\n".join(lines) + "\n"
