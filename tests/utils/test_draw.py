"""tp.utils.draw_*: real PNGs from a built graph, with the cells the model's structure implies."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import structprune as tp

pytest.importorskip("matplotlib")


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.conv3 = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 4, 1)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return self.conv3(y + self.conv2(y))


@pytest.fixture(scope="module")
def graph():
    return tp.DependencyGraph().build_dependency(Residual().eval(), example_inputs=torch.randn(1, 3, 8, 8))


@pytest.mark.parametrize("draw", ["draw_computational_graph", "draw_dependency_graph", "draw_groups"])
def test_draw_writes_a_png(graph, draw, tmp_path):
    path = tmp_path / f"{draw}.png"
    fig, ax = getattr(tp.utils, draw)(graph, str(path), title=draw, figsize=(3, 3), dpi=50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 500
    matrix = ax.get_images()[0].get_array()
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert ax.get_title() == draw and matrix.shape == (len(labels), len(labels)) and matrix.sum() > 0
    cell = lambda a, b: matrix[labels.index(a), labels.index(b)]  # noqa: E731
    if draw == "draw_computational_graph":
        assert labels == ["conv1", "bn1", "conv2", "conv3"]
        assert cell("bn1", "conv2") == cell("bn1", "conv3") == cell("conv2", "conv3") == 1  # through relu, add
        assert cell("conv1", "conv3") == 0
    elif draw == "draw_groups":  # conv1/bn1/conv2 out, the residual sum, feed conv2 and conv3 in: one group
        assert cell("conv1.out", "conv3.in") == cell("conv2.out", "conv2.in") == 1
        assert "conv3.out" not in labels  # the model's output channels are pinned
    else:
        assert cell("conv1.out", "bn1.out") == 1 and cell("bn1.out", "conv2.in") == 1
        assert cell("conv1.out", "conv3.in") == 0


def test_draw_needs_a_built_graph(tmp_path):
    with pytest.raises(ValueError, match="build_dependency"):
        tp.utils.draw_groups(tp.DependencyGraph(), str(tmp_path / "x.png"))
