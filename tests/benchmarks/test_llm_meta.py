"""A Llama-shaped model analysed on meta: groups found, no weights allocated, plan printed."""

import torch

from benchmarks.llm_meta import analyse, format_plan, llama_on_meta


def test_small_llama_on_meta_plan():
    model = llama_on_meta(layers=2, hidden=64, intermediate=128, heads=4, kv_heads=2, vocab=128)
    assert all(p.device.type == "meta" for p in model.parameters())
    plan = analyse(model)
    kinds = plan.kinds()
    assert kinds["channel"] >= 3  # hidden size + one MLP per layer
    mlp = [g for g in plan.groups if "mlp.gate_proj" in g["root"]]
    assert len(mlp) == 2 and all(g["units"] == 128 for g in mlp)
    assert any(g["kind"] == "head" for g in plan.groups)
    assert any("model output" in r for rs in plan.pinned.values() for r in rs)
    text = format_plan(plan)
    assert "groups:" in text and "pinned dims" in text


def test_meta_analysis_leaves_model_unchanged():
    model = llama_on_meta(layers=1, hidden=32, intermediate=64, heads=2, kv_heads=1, vocab=64)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    analyse(model)
    assert shapes == {n: tuple(p.shape) for n, p in model.named_parameters()}
    assert torch.device("meta") == next(model.parameters()).device


def test_measure_prints_time_and_peak_memory(capsys):
    import json

    from benchmarks.llm_meta import format_sizes, main

    main(["--layers", "1", "--hidden", "32", "--intermediate", "64", "--heads", "2", "--kv-heads", "1",
          "--vocab", "64", "--measure"])
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["groups"] >= 2 and row["peak_rss_gb"] > 0 and row["total_s"] >= row["build_s"]
    assert row["process_cpu_s"] >= row["cpu_s"] >= 0
    assert "70b" in format_sizes([{"shape": "70b", **row}])
