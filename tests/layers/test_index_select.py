"""layers.base.index_select: the same bits as torch.index_select on every path."""

import pytest
import torch
import torch.nn as nn

from structprune.layers.base import index_select, prune_tensor


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("shape,axis", [((256, 96), 1), ((96, 256), -1), ((64, 48, 3, 3), 1), ((8, 64, 40), 2),
                                        ((300, 80), 0), ((4, 5), 1)])
def test_same_bits_as_torch(dtype, shape, axis):
    torch.manual_seed(0)
    tensor = torch.randn(*shape).to(dtype)
    size = shape[axis]
    for keep in (torch.sort(torch.randperm(size)[: size // 2]).values, torch.tensor([size - 1, 0, 0, 2]),
                 torch.arange(size), torch.tensor([], dtype=torch.long)):
        want = torch.index_select(tensor, axis, keep)
        got = index_select(tensor, axis, keep)
        assert got.dtype == want.dtype and got.shape == want.shape and got.is_contiguous()
        assert torch.equal(got, want)
        assert torch.equal(index_select(tensor.transpose(0, -1), axis, keep[keep < tensor.transpose(0, -1).shape[axis]]),
                           torch.index_select(tensor.transpose(0, -1), axis, keep[keep < tensor.transpose(0, -1).shape[axis]]))


def test_out_of_range_raises_as_torch():
    tensor = torch.randn(64, 512).to(torch.bfloat16)
    with pytest.raises((IndexError, RuntimeError)):
        index_select(tensor, 1, torch.tensor([0, 512]))
    with pytest.raises((IndexError, RuntimeError)):
        index_select(tensor, 1, torch.tensor([-1, 3]))


def test_pruned_bf16_linear_keeps_parameter_and_grad():
    torch.manual_seed(0)
    layer = nn.Linear(512, 64).to(torch.bfloat16)
    layer.weight.grad = torch.randn_like(layer.weight)
    weight, grad = layer.weight.detach().clone(), layer.weight.grad.clone()
    removed = list(range(0, 512, 3))
    prune_tensor(layer, "weight", 1, removed)
    keep = torch.tensor([i for i in range(512) if i % 3])
    assert isinstance(layer.weight, nn.Parameter) and layer.weight.requires_grad
    assert torch.equal(layer.weight.detach(), weight[:, keep])
    assert torch.equal(layer.weight.grad, grad[:, keep])
