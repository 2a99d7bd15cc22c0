"""tp.utils.print_tool and tp.utils.flatten_as_list."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import structprune as tp


def test_print_tool_shows_changed_layers_params_and_macs_after_a_real_prune(capsys):
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 3))
    x = torch.randn(1, 3, 8, 8)
    tp.utils.print_tool.before_pruning(model, example_inputs=x)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    graph.get_pruning_group(model[0], tp.prune_conv_out_channels, idxs=[0, 1, 2, 3]).prune()
    text = tp.utils.print_tool.after_pruning(model)
    assert text in capsys.readouterr().out
    assert "(0): Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1)) => (0): Conv2d(3, 4," in text
    assert "(1): BatchNorm2d(8, eps=1e-05, " in text and " => (1): BatchNorm2d(4, eps=1e-05, " in text
    assert "  (2): ReLU()\n" in text
    params_before = 8 * 27 + 8 + 16 + 4 * 72 + 4
    params_after = 4 * 27 + 4 + 8 + 4 * 36 + 4
    macs_before, macs_after = 36 * (8 * 27 + 2 * 8) + 16 * 4 * 72, 36 * (4 * 27 + 2 * 4) + 16 * 4 * 36
    assert f"params: {params_before} => {params_after}" in text
    assert f"MACs: {macs_before / 1e3:.2f}K => {macs_after / 1e3:.2f}K" in text


def test_print_tool_without_example_inputs_and_needs_before_pruning():
    model = nn.Linear(4, 2)
    tp.utils.print_tool.before_pruning(model)
    text = tp.utils.print_tool.after_pruning(model, do_print=False)
    assert text.startswith("Linear(in_features=4") and "params: 10 => 10 (+0.0%)" in text and "MACs" not in text
    with pytest.raises(ValueError, match="before_pruning"):
        tp.utils.print_tool.after_pruning(model)


def test_flatten_as_list():
    a, b, c = torch.zeros(1), torch.ones(1), torch.ones(2)
    flat = tp.utils.flatten_as_list({"x": a, "rest": [b, (c, None)]})
    assert len(flat) == 4 and flat[0] is a and flat[1] is b and flat[2] is c and flat[3] is None
    assert tp.utils.flatten_as_list(a) == [a] and tp.utils.flatten_as_list(3) == 3
