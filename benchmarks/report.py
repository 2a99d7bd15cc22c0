"""Markdown tables and one-line summaries of prunability results."""

from __future__ import annotations


def _millions(n: int | None) -> str:
    return f"{n / 1e6:.2f}" if n else "-"


def _macs(n: int | None) -> str:
    """``"1.819 G"`` or, for the tiny Hugging Face configs, ``"0.55 M"``."""
    if not n:
        return "-"
    return f"{n / 1e9:.3f} G" if n >= 1e8 else f"{n / 1e6:.2f} M"


CONFIG_NOTE = (" Hugging Face models are pruned as far as their config can express (the pruner's default"
               " `keep_config_expressible=True`): the last column lists each model's config limits (the"
               " pruner logs why).")

DETECTION_NOTE = (" Detectors' MACs are counted with their score thresholds set to 0 and NMS thresholds to 1"
                  " (restored afterwards), so their per-box heads run on the full `detections_per_img` boxes"
                  " (and R-CNN box heads on the full `post_nms_top_n` proposals) both before and after pruning:"
                  " the same load, not however many boxes random weights let through.")


def summary_line(suite: str, rows: list[dict]) -> str:
    """``"torchvision: 109/109 prune ..."`` with a per-group breakdown."""
    groups: dict[str, list[int]] = {}
    for row in rows:
        tally = groups.setdefault(row.get("group") or suite, [0, 0])
        tally[0] += bool(row["ok"])
        tally[1] += 1
    passed = sum(bool(r["ok"]) for r in rows)
    parts = ", ".join(f"{g} {p}/{n}" for g, (p, n) in sorted(groups.items())) if len(groups) <= 12 else ""
    line = f"{suite}: {passed}/{len(rows)} prune, run and keep their output shapes" + (f" ({parts})" if parts else "")
    reloads = [r for r in rows if r.get("roundtrip")]
    if reloads:
        line += f"; save_pretrained/from_pretrained round trip {sum(r['roundtrip'] == 'ok' for r in reloads)}/{len(rows)}"
    return line


def markdown_table(suite: str, rows: list[dict]) -> str:
    """The full table: one row per model, failures with their one-line reason."""
    lines = [f"# Prunability: {suite}", "", summary_line(suite, rows), "",
             "50% of every group's channels removed by `MagnitudePruner(pruning_ratio=0.5)`, no ignored layers."
             + (" With `--heads`, also 50% of whole attention heads (`prune_num_heads=True, head_pruning_ratio=0.5`)."
                if suite.endswith("_heads") else "")
             + (DETECTION_NOTE if any(r.get("detections_before") is not None for r in rows) else "")
             + (CONFIG_NOTE if any(r.get("roundtrip") for r in rows) else ""), "",
             "| model | group | ok | params M (before -> after) | MACs (before -> after) | build s | total s "
             "| refused groups | unhandled ops | reason |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r.get("group", ""), r["name"])):
        params = f"{_millions(r.get('params_before'))} -> {_millions(r.get('params_after'))}"
        macs = f"{_macs(r.get('macs_before'))} -> {_macs(r.get('macs_after'))}"
        ops = ", ".join(r.get("unhandled_ops", [])) or "-"
        reason = r.get("reason") or r.get("first_refusal") or ""
        if r.get("roundtrip") not in (None, "", "ok"):
            reason = f"{reason} round trip: {r['roundtrip']}".strip()
        if r.get("config_notes"):
            reason = f"{reason} config limits: {'; '.join(r['config_notes'])}".strip()
        reason = reason.replace("|", "\\|")
        lines.append(f"| {r['name']} | {r.get('group', '')} | {'yes' if r['ok'] else '**no**'} | {params} | {macs} "
                     f"| {r.get('build_s', '-')} | {r.get('total_s', '-')} | {r.get('groups_refused', 0)} "
                     f"| {ops} | {reason} |")
    return "\n".join(lines) + "\n"
