"""See the inner workings of an LSTM: gate statistics, interpretable units, an HTML report.

    from lstmlab.inspect import collect_trace, saturation, rank_units, write_report

    recording = collect_trace(lstm, inputs)                 # or collect_text_trace(model, ids, pieces)
    stats = saturation(recording)                           # per layer and gate: (D, H) fractions
    best = rank_units(recording, "inside_quotes")           # units whose cell tracks quotes
    write_report(recording, "out/", summary="my model")     # out/report.html + PNGs

Nothing here knows an application: each recipe builds its report from these pieces
(`lstmlab.recipes.lm.inspect`, `lstmlab.recipes.longlag.inspect`), and `lstmlab inspect
RUN` dispatches to the run's recipe.
"""

from lstmlab.inspect.collect import QUANTITIES, Recording, as_recording, collect_text_trace, collect_trace
from lstmlab.inspect.features import (
    BUILTIN_FEATURES,
    UnitScore,
    characters_to_tokens,
    feature_signal,
    rank_units,
    unit_correlations,
)
from lstmlab.inspect.report import ReportSection, write_report
from lstmlab.inspect.stats import (
    GateSaturation,
    MemoryProfile,
    forget_half_life,
    memory_profile,
    memory_span,
    memory_summary,
    retention_curve,
    saturation,
    saturation_summary,
)

__all__ = [
    "BUILTIN_FEATURES", "GateSaturation", "MemoryProfile", "QUANTITIES", "Recording", "ReportSection", "UnitScore",
    "as_recording", "characters_to_tokens", "collect_text_trace", "collect_trace", "feature_signal",
    "forget_half_life", "memory_profile", "memory_span", "memory_summary", "rank_units", "retention_curve", "saturation",
    "saturation_summary", "unit_correlations", "write_report",
]
