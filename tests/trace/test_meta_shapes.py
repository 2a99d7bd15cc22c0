"""Conv / adaptive-pool output shortcuts on meta equal the meta kernels (shape, dtype, strides)."""

import itertools
import random

import pytest
import torch
import torch.nn.functional as F

from structprune.trace.meta import meta_shortcut
from structprune.trace.meta_shapes import conv_output, pool_output
from structprune.trace.traced_int import TracedInt

CONVS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
POOLS = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}


def _same(fast, slow):
    assert fast is not None
    assert (fast.shape, fast.dtype, fast.stride()) == (slow.shape, slow.dtype, slow.stride())


@pytest.mark.filterwarnings("ignore:Using padding=.same.")
def test_conv_shortcut_equals_the_meta_kernel_on_random_configs():
    rng = random.Random(0)
    for _ in range(120):
        d = rng.choice((1, 2, 3))
        groups = rng.choice((1, 1, 2, 4))
        cin, cout = groups * rng.randint(1, 3), groups * rng.randint(1, 3)
        k = tuple(rng.randint(1, 3) for _ in range(d))
        stride = rng.choice((1, 2, (rng.randint(1, 3),) * d))
        dilation = rng.choice((1, 2))
        padding = rng.choice((0, 1, 2, "valid", "same", [rng.randint(0, 2)] * d))
        if padding == "same":
            stride = 1
        x = torch.empty(rng.randint(1, 2), cin, *(rng.randint(5, 9) for _ in range(d)), device="meta")
        w = torch.empty(cout, cin // groups, *k, device="meta")
        bias = rng.choice((None, torch.empty(cout, device="meta")))
        args = (x, w, bias, stride, padding, dilation, groups)
        _same(conv_output(f"conv{d}d", args, {}), CONVS[d](*args))
        kwargs = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
        _same(conv_output(f"conv{d}d", (x, w), kwargs), CONVS[d](x, w, **kwargs))


def test_conv_shortcut_takes_traced_ints_and_declines_what_it_does_not_handle():
    x, w = torch.empty(1, 4, 8, 8, device="meta"), torch.empty(6, 2, 3, 3, device="meta")
    traced = (TracedInt(1, {("m", "stride")}), TracedInt(1, {("m", "stride")}))
    out = conv_output("conv2d", (x, w, None, traced, (1, 1), 1, TracedInt(2, {("m", "groups")})), {})
    _same(out, F.conv2d(x, w, None, 1, 1, 1, 2))
    assert type(out.shape[2]) is int
    assert conv_output("conv2d", (x, w), {}) is None  # channels do not match: the kernel raises
    assert conv_output("conv2d", (x[0], torch.empty(6, 4, 3, 3, device="meta")), {}) is None  # unbatched
    assert conv_output("conv2d", (x.transpose(2, 3), torch.empty(6, 4, 3, 3, device="meta")), {}) is None
    assert conv_output("conv2d", (x, torch.empty(6, 4, 3, 3, device="meta", dtype=torch.float64)), {}) is None
    assert conv_output("conv2d", (x, torch.empty(6, 4, 9, 9, device="meta")), {}) is None  # output empty
    assert conv_output("conv2d", (x, torch.empty(6, 4, 3, 3, device="meta")), {"stride": 2, "padding": "same"}) \
        is None


def test_pool_shortcut_equals_the_meta_kernel():
    for d, batched, size in itertools.product((1, 2, 3), (True, False), (1, 3, None)):
        shape = ((2,) if batched else ()) + (5,) + (7,) * d
        x = torch.empty(*shape, device="meta")
        out_size = size if size is not None else (None,) + (3,) * (d - 1)
        if d == 1 and size is None:
            assert pool_output("adaptive_avg_pool1d", (x, out_size), {}) is None  # the kernel raises
            continue
        _same(pool_output(f"adaptive_avg_pool{d}d", (x, out_size), {}), POOLS[d](x, out_size))
    x = torch.empty(2, 5, 7, 7, device="meta")
    assert pool_output("adaptive_avg_pool2d", (x.transpose(2, 3), 1), {}) is None
    assert pool_output("adaptive_avg_pool2d", (x, (1, 1, 1)), {}) is None


def test_meta_shortcut_gives_conv_and_pool_outputs_with_grad():
    x = torch.empty(1, 4, 8, 8, device="meta", requires_grad=True) * 1.0
    w = torch.nn.Parameter(torch.empty(6, 4, 3, 3, device="meta"))
    for name, args, fn in [("conv2d", (x, w, None, 1, 1), F.conv2d),
                           ("adaptive_avg_pool2d", (x, 1), F.adaptive_avg_pool2d)]:
        fast, slow = meta_shortcut(name, args, {}), fn(*args)
        _same(fast, slow)
        assert fast.requires_grad and fast.grad_fn is not None


def _meta(shape, transposed: bool, dtype=torch.float32):
    """A meta tensor of ``shape``, laid out contiguously or as a (1, 2)-transposed view."""
    if not transposed or len(shape) < 4:
        return torch.empty(shape, device="meta", dtype=dtype)
    b, h, n, d = shape
    return torch.empty(b, n, h, d, device="meta", dtype=dtype).transpose(1, 2)


def test_attention_shortcut_equals_the_meta_kernel_on_random_configs():
    rng, shortcuts = random.Random(0), 0
    for _ in range(40):
        ndim, dtype = rng.choice((3, 4)), rng.choice((torch.float32, torch.bfloat16))
        lead = (rng.randint(1, 2), rng.randint(1, 3))[:ndim - 2]
        n, s, e, ev = rng.randint(1, 5), rng.randint(1, 5), rng.randint(1, 4), rng.randint(1, 4)
        transposed = rng.random() < 0.5
        q, k, v = (_meta((*lead, *tail), transposed, dtype) for tail in ((n, e), (s, e), (s, ev)))
        kwargs = {}
        mask_kind = rng.choice((None, "bool", "float", "row"))
        if mask_kind is not None:
            shape = (1, s) if mask_kind == "row" else (*lead, n, s)
            kwargs["attn_mask"] = torch.empty(shape, device="meta", dtype=torch.bool if mask_kind == "bool" else dtype)
        elif rng.random() < 0.5:
            kwargs["is_causal"] = True
        if rng.random() < 0.3:
            kwargs["scale"] = 0.5
        fast = meta_shortcut("scaled_dot_product_attention", (q, k, v), kwargs)
        if fast is not None:  # None: the call is left to the kernel (3-d, causal ...)
            _same(fast, F.scaled_dot_product_attention(q, k, v, **kwargs))
            shortcuts += 1
    assert shortcuts >= 10


def test_binary_shortcut_broadcasts_like_torch_and_leaves_mismatches_to_the_kernel():
    rng = random.Random(1)
    for _ in range(300):
        a = tuple(rng.choice((0, 1, 2, 3)) for _ in range(rng.randint(0, 4)))
        b = tuple(rng.choice((0, 1, 2, 3)) for _ in range(rng.randint(0, 4)))
        x, y = torch.empty(a, device="meta"), torch.empty(b, device="meta")
        try:
            want = torch.broadcast_shapes(a, b)
        except RuntimeError:
            assert meta_shortcut("mul", (x, y), {}) is None  # the kernel runs, and raises
            continue
        got = meta_shortcut("mul", (x, y), {})
        assert got is not None and got.shape == want and got.dtype == x.dtype
