"""benchmarks/llm.py on one small family: config, stock reload, generate and counts are checked."""

import pytest

pytest.importorskip("transformers")

from benchmarks.llm import decoder_table, gloss_batches, run_one  # noqa: E402


def test_one_family_one_criterion_round_trips():
    try:
        batches = gloss_batches(count=2)
    except FileNotFoundError as error:
        pytest.skip(str(error))
    row = run_one("qwen2", 0.5, "activation", batches, timing=False)
    assert (row["hidden"], row["q_heads"], row["kv_heads"], row["ffn"]) == (64, 4, 1, 176)
    assert row["config_matches"] and row["generate_matches"] and row["round_trip_max_diff"] < 1e-5
    assert row["params_after"] < row["params_before"] and row["macs_after"] < row["macs_before"]
    assert "qwen2" in decoder_table([row])
