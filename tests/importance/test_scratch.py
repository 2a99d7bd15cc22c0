"""float_rows: the same float32 matrix as rows().float() (values and strides), reused buffer or not."""

import pytest
import torch

from structprune.importance.magnitude import MagnitudeImportance
from structprune.importance.scratch import float_rows, reused_float_buffer
from structprune.importance.slices import UnitSlice


def _slice(shape, axis, dtype, transposed=False):
    data = torch.randn(shape[::-1] if transposed else shape).to(dtype)
    tensor = torch.nn.Parameter(data.t() if transposed else data)
    units = torch.zeros(tensor.shape[axis], 1, dtype=torch.long)
    return UnitSlice(None, "weight", axis, tensor, None, units)


CASES = [((512, 256), 0, torch.bfloat16, False), ((512, 256), 1, torch.bfloat16, False),
         ((256, 512), 1, torch.float16, True), ((64, 32, 3, 3), 1, torch.bfloat16, False),
         ((64, 32, 3, 3), 1, torch.float32, False), ((300, 77), 0, torch.float32, False), ((700,), 0, torch.bfloat16, False)]


@pytest.mark.parametrize("shape,axis,dtype,transposed", CASES)
def test_float_rows_equal_rows_float_in_and_out_of_the_block(shape, axis, dtype, transposed):
    s = _slice(shape, axis, dtype, transposed)
    before = s.tensor.detach().clone()
    expected = s.rows().float()
    plain, _ = float_rows(s)
    with reused_float_buffer():
        other = _slice(shape, axis, dtype, transposed)
        float_rows(other)  # the buffer is then written again for s
        reused, owned = float_rows(s)
        assert torch.equal(reused, expected) and reused.stride() == expected.stride()
        if owned:
            reused.square_()  # an owned matrix may change in place: the parameter does not
    assert torch.equal(plain, expected) and plain.stride() == expected.stride()
    assert torch.equal(s.tensor.detach(), before)


@pytest.mark.parametrize("p", [2, 1, 1.5])
def test_magnitude_scores_unchanged(p):
    for shape, axis, dtype, transposed in CASES:
        s = _slice(shape, axis, dtype, transposed)
        rows = s.rows().float()
        expected = rows.square().sum(1) if p == 2 else rows.abs().pow(p).sum(1)
        imp = MagnitudeImportance(p=p)
        with reused_float_buffer():
            assert torch.equal(imp.element_scores(s), expected)
            assert torch.equal(imp.element_scores(s), expected)
        assert torch.equal(imp.element_scores(s), expected)
