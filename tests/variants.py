"""The one list of LSTM variants the suite parametrises over, and the helpers that pick from it.

`VARIANTS` maps a name to the variant options of one cell: the keyword arguments that
`lstmlab.LSTM` and `lstmlab.LSTMCell` both take (peephole, layer_norm, coupled, zoneout,
weight_drop, forget_bias, chrono_init). It holds no structure (layers, directions,
projection, layout, bias, dropout); a test adds the structure its sizes allow with
`variant(name, num_layers=2, ...)`. Every variant combination a test runs is defined here
once; a test names the ones it runs with `cases(...)` / `select(...)`, next to the test.

A name is the options written out, in the dict's key order: a flag set to True by its key,
any other value as key=value (a (zoneout_c, zoneout_h) pair as zoneout=c,h), joined by "-";
the empty dict is "plain". `variant_id` makes the name, so a name cannot disagree with its
options, and the test ids (`parametrize`) are these names, structure included:
"layer_norm-peephole-bidirectional-proj_size=1".

Some values differ between tests only by history (zoneout 0.3 here, 0.25 there); they are
separate entries, so that every test runs exactly the numbers it ran before this list.

Import it as the tests import tolerances.py: `from variants import FUSED_VARIANTS, cases`.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

# The options that change what a cell computes (so a cell that loads another module's
# weights must be built with them), and those that only initialise the bias.
RUNTIME_OPTIONS = ("peephole", "layer_norm", "coupled", "zoneout", "weight_drop")
INIT_OPTIONS = ("forget_bias", "chrono_init")
VARIANT_OPTIONS = RUNTIME_OPTIONS + INIT_OPTIONS
# Module-level structure: taken by lstmlab.LSTM (bias by LSTMCell too), never a variant.
MODULE_OPTIONS = ("num_layers", "bidirectional", "proj_size", "batch_first", "dropout", "bias")


def _value_id(value) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def variant_id(options: Mapping) -> str:
    """The name of `options` (variant and structure): "peephole-zoneout=0.2,0.4-num_layers=2"."""
    return "-".join(key if value is True else f"{key}={_value_id(value)}"
                    for key, value in options.items()) or "plain"


def _named(*option_dicts: dict) -> dict[str, dict]:
    named: dict[str, dict] = {}
    for options in option_dicts:
        unknown = set(options) - set(VARIANT_OPTIONS)
        assert not unknown, f"{options}: not variant options: {sorted(unknown)} (structure goes in variant())"
        twin = next((name for name, other in named.items() if other == options), None)
        assert twin is None, f"{options} is already in VARIANTS as {twin!r}"
        named[variant_id(options)] = options
    return named


VARIANTS: dict[str, dict] = _named(
    # each option alone
    dict(),
    dict(peephole=True),
    dict(layer_norm=True),
    dict(coupled=True),
    dict(zoneout=0.3),
    dict(zoneout=0.1),
    dict(zoneout=(0.1, 0.5)),
    dict(zoneout=(0.2, 0.6)),
    dict(zoneout=(0.0, 0.5)),  # no zoneout on c, some on h
    dict(weight_drop=0.4),
    dict(weight_drop=0.5),
    dict(forget_bias=1.0),
    dict(chrono_init=20),
    dict(chrono_init=8),
    # two or three equation options (key order as the fused engine tests write them)
    dict(peephole=True, coupled=True),
    dict(layer_norm=True, peephole=True),
    dict(layer_norm=True, coupled=True),
    dict(coupled=True, zoneout=0.3),
    dict(peephole=True, layer_norm=True, coupled=True),
    dict(peephole=True, layer_norm=True, zoneout=0.2),
    dict(peephole=True, coupled=True, zoneout=0.25),
    dict(zoneout=(0.2, 0.4), layer_norm=True, peephole=True),
    dict(peephole=True, zoneout=0.2, weight_drop=0.3),
    dict(weight_drop=0.3, forget_bias=1.0),
    # everything that changes the equations
    dict(peephole=True, layer_norm=True, coupled=True, zoneout=0.3),
    dict(peephole=True, layer_norm=True, coupled=True, zoneout=(0.1, 0.4)),
    dict(peephole=True, layer_norm=True, coupled=True, zoneout=(0.2, 0.4)),
    dict(peephole=True, layer_norm=True, coupled=True, zoneout=(0.2, 0.3), weight_drop=0.2),
    dict(peephole=True, layer_norm=True, coupled=True, zoneout=(0.3, 0.1), weight_drop=0.2),
)


def variant(name: str, **module) -> dict:
    """A fresh copy of the options of VARIANTS[name], with module-level structure added."""
    if name not in VARIANTS:
        raise KeyError(f"no variant {name!r} in tests/variants.py; expected one of {list(VARIANTS)}")
    unknown = set(module) - set(MODULE_OPTIONS)
    assert not unknown, f"variant({name!r}): not structure options: {sorted(unknown)}"
    return {**VARIANTS[name], **module}


def cases(*items: str | dict) -> dict[str, dict]:
    """id -> options for a parametrisation, in the order given. An item is a VARIANTS name
    or options built by `variant(name, **structure)`; the id is `variant_id` of the options."""
    picked: dict[str, dict] = {}
    for item in items:
        options = variant(item) if isinstance(item, str) else dict(item)
        case_id = variant_id(options)
        assert case_id not in picked, f"{case_id} is picked twice"
        picked[case_id] = options
    return picked


def select(*names: str) -> list[dict]:
    """Fresh copies of the options of the named variants, in the order given."""
    return list(cases(*names).values())


def parametrize(argname: str, picked: Mapping[str, dict]):
    """`pytest.mark.parametrize` over `picked` (from `cases`), its keys as the test ids."""
    return pytest.mark.parametrize(argname, list(picked.values()), ids=list(picked))


def cell_options(options: Mapping) -> dict:
    """The options an LSTMCell needs to compute what one layer of an LSTM built with `options`
    computes, when it loads that layer's weights: the runtime variant options (structure and
    the initialisation-only forget_bias / chrono_init left out)."""
    return {key: value for key, value in options.items() if key in RUNTIME_OPTIONS}


def module_options(options: Mapping) -> dict:
    """The module-level structure in `options` (what LSTMCell does not take, and bias)."""
    return {key: value for key, value in options.items() if key in MODULE_OPTIONS}


# The variants the fused C++ engine runs (tests/test_engines.py crosses them with its SHAPES):
# the equation options it implements, alone and together, and zoneout; in this order.
FUSED_VARIANTS: list[dict] = select(
    "plain", "peephole", "coupled", "peephole-coupled", "layer_norm", "layer_norm-peephole",
    "layer_norm-coupled", "zoneout=0.3", "zoneout=0.2,0.4-layer_norm-peephole",
)
