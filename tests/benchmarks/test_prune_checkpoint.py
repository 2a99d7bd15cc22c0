"""The streaming-prune benchmark on a tiny Llama shape: generated, pruned in a child process, checked."""

import pytest

from benchmarks.prune_checkpoint import main


@pytest.mark.slow
def test_small_checkpoint_pruned_checked_and_removed(tmp_path, capsys):
    source = tmp_path / "llama"
    main(["--dir", str(source), "--layers", "2", "--hidden", "64", "--intermediate", "128", "--heads", "4",
          "--kv-heads", "2", "--vocab", "100", "--shard-gb", "0.00005", "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert "peak RSS" in out and "= in-memory prune" in out
    assert not source.exists() and (tmp_path / "r.json").is_file()
