"""The tolerance tables of the test suite, per dtype and per named comparison, and the helper.

Every numerical comparison between an lstmlab engine and its ground truth (torch.nn.LSTM,
the reference engine, or the equations written out in a test) goes through
`assert_close`, so tightening or loosening a dtype's tolerance happens here and only here.
A comparison that is not "an engine against its ground truth at a dtype" (a closed form
in float32, one computation run two ways, finite differences) has a named row in `NAMED`,
passed by name where a dtype would go; `GRADCHECK` holds torch.autograd.gradcheck's
arguments. No test writes a literal rtol / atol.

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


NAMED: dict[str, dict[str, float]] = {
    # zoneout in training: a unit of c_t / h_t is either copied from step t-1 (bit-equal)
    # or the update the test recomputes in float64 from the trace's gates; the recomputed
    # products differ from the engine's only by rounding order (~1e-16 on O(1) values).
    # 1e-12 absolute tells "this value" from "another value", no relative part.
    "float64 recomputed": dict(rtol=0, atol=1e-12),
    # float32 against a closed form or an algebraic identity: a product of 10 forget gates
    # vs 0.8**lag (tests/test_inspect_stats.py), (readout + shortcut) - readout vs the
    # shortcut alone (tests/test_longlag_models.py). rtol is torch.allclose's default
    # (1e-5, the calls were allclose with atol only); atol 1e-6 covers values near 0.
    "float32 closed form": dict(rtol=1e-5, atol=1e-6),
    # float32, one computation taken two routes: the LM's recurrent stack as one call vs
    # layer by layer (tests/test_lm.py, LSTM and GRU). The same layers on the same numbers,
    # only grouped into other calls, so a small absolute bound (~10 float32 ulps of an O(1)
    # value) and no relative part.
    "float32 rerouted": dict(rtol=0, atol=1e-6),
    # the fused engine's inference with its cached packed weights vs the reference engine,
    # float32 (tests/test_engines.py, test_fused_inference_packs_changed_weights_again):
    # another GEMM blocking and summation order through 5 recurrent steps; rtol 10x the
    # float32 row, atol the float32 row's.
    "float32 fused inference": dict(rtol=1e-4, atol=1e-5),
}

# torch.autograd.gradcheck in float64 on tiny LSTMs (H = 2, a few steps): a central
# difference with eps 1e-6 errs by ~eps^2 (truncation) plus ~1e-16/eps (rounding), far
# below atol 1e-6 / rtol 1e-4, which are 10x tighter than gradcheck's defaults (atol 1e-5,
# rtol 1e-3) so that a small wrong term in a gradient still fails.
GRADCHECK: dict[str, float] = dict(eps=1e-6, atol=1e-6, rtol=1e-4)


def tolerance(key: torch.dtype | str) -> dict[str, float]:
    """`dict(rtol=..., atol=...)` for a dtype (TOLERANCES) or a named comparison (NAMED);
    a key without a row is a test bug."""
    if isinstance(key, str):
        if key not in NAMED:
            raise KeyError(f"no tolerance named {key!r}; expected one of {sorted(NAMED)}")
        return NAMED[key]
    if key not in TOLERANCES:
        raise KeyError(f"no tolerance for {key}; expected one of {sorted(map(str, TOLERANCES))}")
    return TOLERANCES[key]


def assert_close(actual, expected, dtype: torch.dtype | str, what: str) -> None:
    """Assert `actual` ≈ `expected` with the table's tolerance for `dtype`, or for the named
    comparison when `dtype` is a name from NAMED.

    `what` names the quantity compared (e.g. "grad weight_hh_l1_reverse"), so a failure
    says which of the many compared tensors disagreed.
    """
    assert actual is not None, f"{what}: actual is None (expected a tensor)"
    assert expected is not None, f"{what}: expected is None"
    torch.testing.assert_close(
        actual, expected, **tolerance(dtype), msg=lambda message: f"{what}: {message}"
    )
