"""nn.LSTM / nn.GRU / nn.RNN: hidden units (all layers, both directions) and input features."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import structprune as tp
from helpers import prune_and_check, seeded

RNNS = [nn.LSTM, nn.GRU, nn.RNN]


class Recurrent(nn.Module):
    """Linear -> recurrent layer -> Linear on its output sequence (zero initial state)."""

    def __init__(self, cls, hidden: int = 6, **kw):
        super().__init__()
        self.inp = nn.Linear(4, 5)
        self.rnn = cls(5, hidden, **kw)
        width = kw.get("proj_size") or hidden
        self.head = nn.Linear(width * (2 if kw.get("bidirectional") else 1), 3)

    def forward(self, x):
        return self.head(self.rnn(self.inp(x))[0])


def _gates(cls) -> int:
    return {nn.LSTM: 4, nn.GRU: 3, nn.RNN: 1}[cls]


@pytest.mark.parametrize("cls", RNNS)
def test_hidden_units_single_layer(cls):
    # Zeroed gate rows keep the hidden unit at 0 from a zero state, so equality is exact.
    seeded()
    model = Recurrent(cls)
    prune_and_check(model, torch.randn(7, 2, 4), model.rnn, tp.prune_lstm_out_channels, [0, 4])
    g = _gates(cls)
    assert model.rnn.hidden_size == 4 and model.rnn.input_size == 5
    assert model.rnn.weight_ih_l0.shape == (g * 4, 5) and model.rnn.weight_hh_l0.shape == (g * 4, 4)
    assert model.rnn.bias_ih_l0.shape == model.rnn.bias_hh_l0.shape == (g * 4,)
    assert model.head.in_features == 4


@pytest.mark.parametrize("cls", RNNS)
def test_hidden_units_stacked_bidirectional(cls):
    seeded()
    model = Recurrent(cls, num_layers=2, bidirectional=True, batch_first=True)
    prune_and_check(model, torch.randn(2, 7, 4), model.rnn, tp.prune_lstm_out_channels, [1, 2, 5])
    g = _gates(cls)
    for sfx in ("", "_reverse"):
        assert getattr(model.rnn, f"weight_ih_l1{sfx}").shape == (g * 3, 6)  # reads 2 directions x 3
        assert getattr(model.rnn, f"weight_hh_l1{sfx}").shape == (g * 3, 3)
    assert model.head.in_features == 6
    _, state = model.rnn(torch.randn(2, 7, 5))
    h = state[0] if cls is nn.LSTM else state
    assert h.shape == (4, 2, 3)


@pytest.mark.parametrize("cls", RNNS)
def test_input_features(cls):
    seeded()
    model = Recurrent(cls, num_layers=2)
    prune_and_check(model, torch.randn(7, 2, 4), model.inp, tp.prune_linear_out_channels, [3])
    assert model.rnn.input_size == 4 and model.rnn.weight_ih_l0.shape[1] == 4
    assert model.rnn.weight_ih_l1.shape[1] == 6 and model.rnn.hidden_size == 6


def test_lstm_in_channels_function_name():
    seeded()
    model = Recurrent(nn.LSTM)
    prune_and_check(model, torch.randn(7, 2, 4), model.rnn, tp.prune_lstm_in_channels, [0, 1])
    assert model.rnn.input_size == 3 and model.inp.out_features == 3


@pytest.mark.filterwarnings("ignore:LSTM with projections")
def test_lstm_with_projection():
    seeded()
    model = Recurrent(nn.LSTM, num_layers=2, proj_size=2)
    prune_and_check(model, torch.randn(7, 2, 4), model.rnn, tp.prune_lstm_out_channels, [0, 3])
    rnn = model.rnn
    assert rnn.hidden_size == 4 and rnn.proj_size == 2
    assert rnn.weight_hr_l0.shape == rnn.weight_hr_l1.shape == (2, 4)
    assert rnn.weight_hh_l1.shape == (16, 2) and rnn.weight_ih_l1.shape == (16, 2)
    assert model.head.in_features == 2  # the projection is pinned
    with pytest.raises(ValueError, match="proj_size"):
        tp.prune_lstm_out_channels(rnn, idxs=[0, 1])


def test_returned_state_is_pinned():
    # h_n / c_n returned by the model are part of its interface: the hidden size stays, unless
    # the user explicitly asks for those channels (then the group says the output changes).
    seeded()
    rnn = nn.GRU(5, 6)
    graph = tp.DependencyGraph().build_dependency(rnn, example_inputs=torch.randn(7, 2, 5))
    assert not list(graph.get_all_groups())
    group = graph.get_pruning_group(rnn, tp.prune_gru_out_channels, idxs=[0])
    assert group.changes_output and "output size changes" in str(group)
    group.prune()
    out, h = rnn(torch.randn(7, 2, 5))
    assert out.shape == (7, 2, 5) and h.shape == (1, 2, 5)
