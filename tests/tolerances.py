"""The one tolerance table of the test suite, per dtype, and the comparison helper.

Every numerical comparison between an lstmlab engine and its ground truth (torch.nn.LSTM,
the reference engine, or the equations written out in a test) goes through
`assert_close`, so tightening or loosening a dtype's tolerance happens here and only here.

float64: the reference engine and torch's own kernels differ only by the order of
floating-point sums, so agreement is expected near machine precision (~1e-10 after a
few layers and a backward pass). float32: ~1e-5, the accumulated rounding of a few
hundred multiply-adds. The half-precision rows are for later (fused / GPU) engines.
"""

from __future__ import annotations

import torch

TOLERANCES: dict[torch.dtype, dict[str, float]] = {
    torch.float64: dict(rtol=1e-10, atol=1e-10),
    torch.float32: dict(rtol=1e-5, atol=1e-5),
    torch.bfloat16: dict(rtol=1.6e-2, atol=1e-2),
    torch.float16: dict(rtol=1e-3, atol=1e-3),
}


def tolerance(dtype: torch.dtype) -> dict[str, float]:
    """`dict(rtol=..., atol=...)` for `dtype`; a dtype without a row is a test bug."""
    if dtype not in TOLERANCES:
        raise KeyError(f"no tolerance for {dtype}; expected one of {sorted(map(str, TOLERANCES))}")
    return TOLERANCES[dtype]


def assert_close(actual, expected, dtype: torch.dtype, what: str) -> None:
    """Assert `actual` ≈ `expected` with the table's tolerance for `dtype`.

    `what` names the quantity compared (e.g. "grad weight_hh_l1_reverse"), so a failure
    says which of the many compared tensors disagreed.
    """
    assert actual is not None, f"{what}: actual is None (expected a tensor)"
    assert expected is not None, f"{what}: expected is None"
    torch.testing.assert_close(
        actual, expected, **tolerance(dtype), msg=lambda message: f"{what}: {message}"
    )
