"""Tracing with the weights on meta: the same trace as the real forward, the model left as it was,
and the real forward traced instead when code reads values computed from the weights."""

from __future__ import annotations

import torch
import torch.nn as nn

from structprune.trace.meta import MetaMixError, meta_call_args, meta_shortcut, meta_weights
from structprune.trace.tracer import trace_model


class Caching(nn.Module):
    """Caches a tensor made in forward on itself, and counts its calls in a buffer."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 4)
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x):
        self.seen_meta = self.conv.weight.is_meta
        self.last = self.bn(self.conv(x)).mean((2, 3))
        positions = torch.arange(x.shape[0], device=self.last.device)  # input-only values stay readable
        assert int(positions[-1]) == x.shape[0] - 1
        self.calls += 1
        return self.fc(self.last)


class ReadsWeights(Caching):
    def forward(self, x):
        y = super().forward(x)
        return y * 2 if bool(self.fc.weight.abs().sum() > 0) else y


def _ops(trace):
    return [(n.op, [v.shape for v in n.inputs], [v.shape for v in n.outputs], n.scope) for n in trace.nodes]


def test_meta_trace_equals_real_trace_and_restores_the_model():
    torch.manual_seed(0)
    model = Caching().train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 5, 5)
    leaf = lambda m: isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))  # noqa: E731
    on_meta = trace_model(model, x, leaf)
    assert not hasattr(model, "last") and not hasattr(model, "seen_meta")  # forward attributes undone
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())  # no running-stat update
    assert not any(t.is_meta for t in model.state_dict().values())
    real = trace_model(model, x, leaf, meta_first=False)
    assert model.seen_meta is False and _ops(on_meta) == _ops(real)
    assert [v.name for v in on_meta.values if v.origin == "param"] == [v.name for v in real.values if v.origin == "param"]


def test_value_dependent_code_falls_back_to_the_real_forward():
    model = ReadsWeights().eval()
    trace = trace_model(model, torch.randn(2, 3, 5, 5), lambda m: False)
    assert model.seen_meta is False  # the real forward ran (and its attributes stay, as before)
    assert any("gt" in n.op for n in trace.nodes) and any("mul" in n.op for n in trace.nodes)


def test_tied_weights_stay_tied_on_meta():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 10, bias=False))
    model[1].weight = model[0].weight
    with meta_weights(model):
        assert model[1].weight is model[0].weight and model[0].weight.is_meta
        assert isinstance(model[0].weight, nn.Parameter)
    assert not model[0].weight.is_meta and model[1].weight is model[0].weight


def test_mixed_operands_move_to_meta_but_never_write_into_real_tensors():
    real, meta = torch.ones(3), torch.ones(3, device="meta")
    args, _ = meta_call_args("add", (real, meta), {}, torch.device("cpu"))
    assert all(a.is_meta for a in args)
    _, kwargs = meta_call_args("arange", (3,), {"device": torch.device("meta")}, torch.device("cpu"))
    assert kwargs["device"] == torch.device("cpu")
    try:
        meta_call_args("add_", (real, meta), {}, torch.device("cpu"))
    except MetaMixError:
        return
    raise AssertionError("an in-place op into a real tensor must not run on meta")


def test_shortcut_outputs_match_the_meta_kernels():
    x = torch.empty(2, 5, 8, device="meta", requires_grad=True) * 1.0
    w = torch.empty(3, 8, device="meta")
    for name, args, kwargs, fn in [
        ("gelu", (x,), {}, torch.nn.functional.gelu),
        ("layer_norm", (x, (8,)), {}, torch.nn.functional.layer_norm),
        ("add", (x, torch.empty(8, device="meta", dtype=torch.float64)), {}, torch.add),
        ("__mul__", (x, 2), {}, lambda a, b: a * b),
        ("pow", (x, 2), {}, torch.pow),
        ("linear", (x, w), {}, torch.nn.functional.linear),
    ]:
        fast, slow = meta_shortcut(name, args, kwargs), fn(*args, **kwargs)
        assert (fast.shape, fast.dtype, fast.requires_grad) == (slow.shape, slow.dtype, slow.requires_grad)
        assert fast.grad_fn is not None
    assert meta_shortcut("relu", (x, True), {}) is x  # in place: the input is the output
    assert meta_shortcut("div", (x, x), {"rounding_mode": "floor"}) is None
    assert meta_shortcut("gelu", (torch.ones(2),), {}) is None  # real operands: the real op runs


def test_in_place_shortcuts_return_the_input_where_the_kernel_would_succeed():
    x = torch.empty(2, 5, 8, device="meta", requires_grad=True) * 1.0
    assert meta_shortcut("hardtanh", (x,), {"min_val": 0.0, "max_val": 6.0, "inplace": True}) is x
    assert meta_shortcut("add_", (x, torch.empty(8, device="meta")), {}) is x
    assert meta_shortcut("__iadd__", (x, 1.0), {}) is x
    assert meta_shortcut("relu_", (x,), {}) is x
    assert meta_shortcut("add_", (x, torch.empty(4, 2, 5, 8, device="meta")), {}) is None  # would broadcast up
    assert meta_shortcut("add_", (x, torch.empty(3, 5, 8, device="meta")), {}) is None  # does not broadcast
    leaf = torch.empty(2, 8, device="meta", requires_grad=True)
    assert meta_shortcut("relu", (leaf, True), {}) is None  # a leaf that requires grad: the kernel raises
    assert meta_shortcut("relu", (x[0], True), {}) is None  # a view: left to the kernel
    with torch.no_grad():
        assert meta_shortcut("relu", (leaf, True), {}) is leaf


def test_like_input_shortcut_keeps_strides():
    x = torch.empty(2, 5, 8, device="meta").transpose(1, 2)
    for t in (x, x.contiguous()):
        assert meta_shortcut("gelu", (t,), {}).stride() == torch.nn.functional.gelu(t).stride()


def test_binary_shortcut_leaves_strided_operands_to_the_kernel():
    """A permuted (or channels_last) operand makes the kernel's output keep that layout, so a
    ``.view`` after it fails for real: the shortcut's output must not be contiguous there."""
    x = torch.empty(2, 5, 8, device="meta")
    for a, b in [(x.transpose(1, 2), 1.0), (x.transpose(1, 2), x.transpose(1, 2)), (x, torch.empty(8, device="meta")),
                 (torch.empty(2, 3, 4, 4, device="meta").to(memory_format=torch.channels_last),
                  torch.empty(3, 1, 1, device="meta"))]:
        fast, slow = meta_shortcut("add", (a, b), {}), torch.add(a, b)
        assert fast is None or fast.stride() == slow.stride()
    assert meta_shortcut("mul", (x.transpose(1, 2), 2.0), {}) is None


def _same_output(fast, slow):
    assert fast is not None
    assert (fast.shape, fast.dtype, fast.stride(), fast.requires_grad) == \
        (slow.shape, slow.dtype, slow.stride(), slow.requires_grad)


def test_concat_roll_compare_mask_and_matmul_shortcuts_match_the_meta_kernels():
    x = torch.empty(2, 4, 6, 6, device="meta", requires_grad=True) * 1.0
    y = torch.empty(2, 3, 6, 6, device="meta")
    k = torch.empty(2, 4, 5, 6, device="meta")
    mask = torch.empty(6, 6, device="meta", dtype=torch.bool)
    for name, args, kwargs, fn in [
        ("cat", ([x, y],), {"dim": 1}, torch.cat),
        ("cat", ((y, y, y), -1), {}, torch.cat),
        ("concat", ([y, x],), {"dim": 1}, torch.concat),
        ("roll", (x, (1, -2), (2, 3)), {}, torch.roll),
        ("roll", (y,), {"shifts": 3, "dims": 1}, torch.roll),
        ("ne", (x, 0), {}, torch.ne),
        ("__eq__", (y, torch.empty(6, device="meta")), {}, lambda a, b: a == b),
        ("masked_fill", (x, mask, -100.0), {}, torch.masked_fill),
        ("matmul", (x, k.transpose(-2, -1)), {}, torch.matmul),
        ("__matmul__", (x, torch.empty(6, 3, device="meta")), {}, lambda a, b: a @ b),
        ("matmul", (torch.empty(4, 6, 6, device="meta"), x), {}, torch.matmul),
    ]:
        _same_output(meta_shortcut(name, args, kwargs), fn(*args, **kwargs))
    assert meta_shortcut("cat", ([x, torch.empty(2, 4, 5, 6, device="meta")],), {"dim": 1}) is None  # mismatch
    assert meta_shortcut("cat", ([x, x.double()],), {}) is None  # promotion: left to the kernel
    assert meta_shortcut("cat", ([x.transpose(1, 2), x],), {}) is None  # not contiguous
    assert meta_shortcut("roll", (x, 1), {}) is None  # flattening roll
    assert meta_shortcut("roll", (x, (1, 2), (1, 9)), {}) is None  # the kernel raises
    assert meta_shortcut("matmul", (x, torch.empty(5, 3, device="meta")), {}) is None  # the kernel raises
    assert meta_shortcut("masked_fill", (x, torch.empty(6, 6, device="meta")), {}) is None  # not a bool mask


def test_meta_trace_of_a_shifted_window_model_equals_the_real_trace():
    class Shifted(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(6, 6)

        def forward(self, x):
            mask = x.new_zeros(x.shape[-2], x.shape[-1])
            mask = mask.masked_fill(mask != 0, -100.0)
            x = torch.roll(self.proj(x), shifts=(1, 1), dims=(1, 2))
            return torch.cat([x @ x.transpose(-2, -1) + mask, x], dim=-1)

    model = Shifted().eval()
    inputs = torch.randn(2, 6, 6)
    leaf = lambda m: isinstance(m, nn.Linear)  # noqa: E731
    on_meta, real = trace_model(model, inputs, leaf), trace_model(model, inputs, leaf, meta_first=False)
    assert {"roll", "masked_fill", "matmul", "cat"} <= {n.op for n in on_meta.nodes}
    assert _ops(on_meta) == _ops(real)
