"""The scaled_dot_product_attention shortcut on meta equals the meta kernel (shape, dtype, strides)."""

import itertools

import torch
import torch.nn.functional as F

from structprune.trace.meta import meta_shortcut
from structprune.trace.meta_shapes import attention_output


def _qkv(b, h, kv, lq, s, e, ev, dtype, transposed):
    def make(heads, tokens, dim, flip):
        if flip:  # (B, tokens, heads, dim).transpose(1, 2), as Hugging Face attention makes them
            return torch.empty(b, tokens, heads, dim, device="meta", dtype=dtype).transpose(1, 2)
        return torch.empty(b, heads, tokens, dim, device="meta", dtype=dtype)
    return make(h, lq, e, transposed[0]), make(kv, s, e, transposed[1]), make(kv, s, ev, transposed[2])


def test_attention_shortcut_equals_the_meta_kernel():
    shapes = [(1, 8, 2, 6, 6, 16, 16), (2, 4, 4, 5, 7, 8, 8), (1, 4, 4, 1, 9, 8, 12)]
    checked = 0
    for dtype, shape, transposed in itertools.product((torch.float32, torch.bfloat16), shapes,
                                                      itertools.product((False, True), repeat=3)):
        b, h, kv, lq, s = shape[:5]
        masks = [None, torch.ones(lq, s, dtype=torch.bool, device="meta"),
                 torch.zeros(b, 1, lq, s, dtype=dtype, device="meta")]
        for mask, causal in [(m, False) for m in masks] + [(None, True)]:
            q, k, v = _qkv(*shape, dtype, transposed)
            kwargs = {"attn_mask": mask, "is_causal": causal, "enable_gqa": h != kv}
            fast = attention_output((q, k, v), kwargs)
            slow = F.scaled_dot_product_attention(q, k, v, **kwargs)
            assert fast is not None
            assert (fast.shape, fast.dtype, fast.stride()) == (slow.shape, slow.dtype, slow.stride())
            checked += 1
    assert checked == 2 * 3 * 8 * 4


def test_attention_shortcut_leaves_other_calls_to_the_kernel():
    q, k, v = _qkv(1, 8, 2, 4, 4, 8, 8, torch.float32, (False, False, False))
    assert attention_output((q, k, v), {}) is None  # grouped heads without enable_gqa: the kernel raises
    assert attention_output((q, k, v), {"enable_gqa": True, "dropout_p": 0.1}) is None
    assert attention_output((q, k.to(torch.bfloat16), v), {"enable_gqa": True}) is None
    mask = torch.ones(4, 4, dtype=torch.bool, device="meta")
    assert attention_output((q, k, v), {"enable_gqa": True, "attn_mask": mask, "is_causal": True}) is None
    assert attention_output((q, k, v), {"enable_gqa": True, "attn_mask": torch.ones(3, 4, device="meta")}) is None
    assert attention_output((q[:, :, :, :4], k, v), {"enable_gqa": True}) is None


def test_meta_shortcut_output_requires_grad_like_the_kernel():
    q, k, v = _qkv(1, 4, 4, 3, 3, 8, 8, torch.float32, (True, True, True))
    q.requires_grad_()
    with torch.enable_grad():
        out = meta_shortcut("scaled_dot_product_attention", (q, k, v), {"is_causal": True})
    assert out is not None and out.requires_grad and out.grad_fn is not None and out.shape == (1, 4, 3, 8)
