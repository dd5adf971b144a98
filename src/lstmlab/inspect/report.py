"""A self-contained `report.html`: no network, inline CSS/JS, images as base64 data URIs.

`write_report` turns a `Recording` (plus text pieces) into the page and the PNGs beside it:
the text coloured by one unit's activation (pick layer, unit and quantity), heatmaps of
gates and states, the saturation plot, memory-length plots, the units that track built-in
text features, the model summary, and any extra sections (e.g. the long-lag cell plot).
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from lstmlab.inspect import captions
from lstmlab.inspect.collect import QUANTITIES, Recording
from lstmlab.inspect.features import BUILTIN_FEATURES, rank_units, varying_builtin_features
from lstmlab.inspect.plots import QUANTITY_NAMES, plot_gate_heatmaps, plot_retention, plot_saturation
from lstmlab.inspect.report_assets import REPORT_CSS, REPORT_JS
from lstmlab.inspect.stats import memory_profile, memory_summary, saturation, saturation_summary


@dataclass
class ReportSection:
    """An extra section: a heading, an explanatory caption (HTML) and an optional PNG."""

    title: str  # section heading
    caption_html: str  # explanation for a reader new to LSTMs (trusted HTML, written by lstmlab)
    image: Path | None = None  # PNG shown under the caption


def _escape(text: object) -> str:
    return html.escape(str(text), quote=True)


def _image_tag(path: Path, alt: str) -> str:
    encoded = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img class="plot" alt="{_escape(alt)}" src="data:image/png;base64,{encoded}">'


def _quantised_blocks(recording: Recording, max_steps: int) -> tuple[dict, dict]:
    """Per "layer/quantity": base64 int8 (units, steps) matrix, per-unit scale, features per direction."""
    blocks, scales, sizes = {}, {}, {}
    for layer in range(recording.num_layers):
        for name in QUANTITIES:
            values = recording.quantity(layer, name)[:max_steps, 0]  # (T, D, H) (h: (T, D, proj_size))
            sizes[f"{layer}/{name}"] = values.shape[-1]
            rows = values.reshape(values.shape[0], -1).T.numpy().astype(np.float64)  # (D*H, T)
            scale = np.abs(rows).max(axis=1)
            scale[scale == 0] = 1.0
            quantised = np.clip(np.rint(rows / scale[:, None] * 127), -127, 127).astype(np.int8)
            blocks[f"{layer}/{name}"] = base64.b64encode(quantised.tobytes()).decode("ascii")
            scales[f"{layer}/{name}"] = [round(float(value), 6) for value in scale]
    return blocks, scales, sizes


def _data_script(recording: Recording, pieces: list[str], max_steps: int) -> str:
    blocks, scales, sizes = _quantised_blocks(recording, max_steps)
    data = {
        "pieces": pieces,
        "steps": len(pieces),
        "directions": recording.num_directions,
        "layers": [{"hidden": recording.hidden_size(layer)} for layer in range(recording.num_layers)],
        "quantityNames": QUANTITY_NAMES,
        "blocks": blocks,
        "scales": scales,
        "sizes": sizes,
    }
    # "</" would end the script element early; JSON allows escaping the slash.
    text = json.dumps(data, ensure_ascii=True).replace("</", "<\\/")
    return f'<script type="application/json" id="lstm-data">{text}</script>'


def _options(values: Sequence[tuple[str, str]], selected: str) -> str:
    return "".join(
        f'<option value="{_escape(value)}"{" selected" if value == selected else ""}>{_escape(label)}</option>'
        for value, label in values
    )


def _explorer(recording: Recording, first_unit: dict) -> str:
    layers = _options([(str(layer), f"layer {layer}") for layer in range(recording.num_layers)], str(first_unit["layer"]))
    directions = _options([("0", "forward"), ("1", "backward")][: recording.num_directions], str(first_unit["direction"]))
    quantities = _options([(name, QUANTITY_NAMES[name]) for name in QUANTITIES], first_unit["quantity"])
    hidden_direction = "" if recording.num_directions > 1 else ' style="display:none"'
    return f"""
<h2>Read the text through one unit</h2>
<div class="caption">{captions.EXPLORER}</div>
<div class="controls">
  <label>Layer<select id="pick-layer">{layers}</select></label>
  <label{hidden_direction}>Direction<select id="pick-direction">{directions}</select></label>
  <label>Unit<input id="pick-unit" type="number" min="0" value="{first_unit['unit']}" style="width:5em"></label>
  <label>Quantity<select id="pick-quantity">{quantities}</select></label>
</div>
<div class="note">{captions.COLOUR_LEGEND}</div>
<h3 id="explorer-title">&nbsp;</h3>
<div class="text" id="explorer-text"></div>
<div class="hover-info" id="explorer-info">Point at a character to see its value.</div>
"""


def _feature_marks(feature: str, recording: Recording, max_steps: int) -> tuple[str, str]:
    """For a 0/1 feature: ('data-on' attribute with one 0/1 character per shown step, a note)."""
    values = BUILTIN_FEATURES[feature][0](recording.pieces)[:max_steps]
    if not bool(((values == 0) | (values == 1)).all()):
        return "", ""
    marks = "".join("1" if value else "0" for value in values.tolist())
    return f' data-on="{marks}"', " Underlined: where the feature is 1."


def _unit_cards(recording: Recording, top: int, max_steps: int) -> tuple[str, list[dict]]:
    """HTML for the best units per varying built-in feature, and the units as dicts."""
    features = varying_builtin_features(recording)
    if not features:
        return f'<p class="note">{captions.NO_FEATURES}</p>', []
    ranked = {feature: rank_units(recording, feature, quantity="c", top=top) for feature in features}
    # the most clearly tracked feature first
    order = sorted(features, key=lambda feature: -abs(ranked[feature][0].correlation))
    cards, units = [], []
    for feature in order:
        marks, note = _feature_marks(feature, recording, max_steps)
        note_html = f'<div class="note">{note}</div>' if note else ""
        for score in ranked[feature]:
            unit = {"layer": score.layer, "direction": score.direction, "unit": score.unit, "quantity": "c"}
            units.append(unit)
            direction = " (backward)" if recording.num_directions > 1 and score.direction else ""
            unit_json = _escape(json.dumps(unit))
            cards.append(
                f'<div class="unit-card"><h3>{_escape(feature)} ({_escape(BUILTIN_FEATURES[feature][1])}): '
                f"layer {score.layer}{direction}, unit {score.unit}, correlation {score.correlation:+.2f} "
                f'<button data-show="{unit_json}">show in the explorer</button></h3>'
                f"{note_html}"
                f'<div class="text unit-text" data-unit="{unit_json}"{marks}></div>'
                f'<div class="hover-info"></div></div>'
            )
    return "\n".join(cards), units


def _table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """columns: (key, header, format spec)."""
    head = "".join(f"<th>{_escape(header)}</th>" for _, header, _ in columns)
    body = []
    for row in rows:
        cells = []
        for key, _, spec in columns:
            value = row[key]
            text = "∞" if isinstance(value, float) and math.isinf(value) else format(value, spec)
            cells.append(f"<td>{_escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _summary_html(summary: str | dict | None) -> str:
    if summary is None:
        return '<p class="note">No model summary was given.</p>'
    if isinstance(summary, dict):
        rows = "".join(
            f'<tr><th class="left">{_escape(key)}</th><td class="left">{_escape(value)}</td></tr>' for key, value in summary.items()
        )
        return f"<table>{rows}</table>"
    return f'<pre class="summary">{_escape(summary)}</pre>'


def _statistics_sections(recording: Recording, out_dir: Path, max_lag: int | None) -> str:
    stats = saturation(recording)
    saturation_png = plot_saturation(stats, out_dir / "saturation.png")
    saturation_rows = saturation_summary(stats)
    profiles = [memory_profile(recording, layer, max_lag=max_lag) for layer in range(recording.num_layers)]
    retention_png = plot_retention(profiles, out_dir / "memory.png")
    memory_rows = memory_summary(recording, profiles)
    heatmaps = []
    for layer in range(recording.num_layers):
        png = plot_gate_heatmaps(recording, layer, out_dir / f"heatmaps_layer{layer}.png")
        heatmaps.append(_image_tag(png, f"heatmaps of gates and states, layer {layer}"))
    saturation_table = _table(saturation_rows, [
        ("layer", "layer", "d"), ("gate", "gate", "s"), ("mean_left", "share of time shut", ".1%"),
        ("mean_right", "share of time open", ".1%"), ("units_mostly_shut", "units mostly shut", "d"),
        ("units_mostly_open", "units mostly open", "d"), ("units", "units", "d"),
    ])
    memory_table = _table(memory_rows, [
        ("layer", "layer", "d"), ("half_life_median", "half-life, median unit (steps)", ".1f"),
        ("half_life_p90", "half-life, 90th percentile", ".1f"), ("span_median", "span, median unit (steps)", ".1f"),
        ("span_p90", "span, 90th percentile", ".1f"), ("span_max", "longest span", ".1f"),
    ])
    return f"""
<h2>Gates and states over time</h2>
<div class="caption">{captions.HEATMAPS}</div>
{''.join(heatmaps)}
<h2>Gate saturation: how often each gate is fully shut or fully open</h2>
<div class="caption">{captions.SATURATION}</div>
{_image_tag(saturation_png, "saturation plot")}
{saturation_table}
<p class="note">"Mostly shut" / "mostly open": the gate is saturated at more than half of the steps.</p>
<div class="caption">{_saturation_reading(saturation_rows)}</div>
<h2>How long does the memory last?</h2>
<div class="caption">{captions.MEMORY}</div>
{_image_tag(retention_png, "memory retention plot")}
{memory_table}
<div class="caption">{_memory_reading(memory_rows)}</div>
"""


def _saturation_reading(rows: list[dict]) -> str:
    """Plain-words reading of the forget-gate rows, e.g. for a reader new to saturation."""
    lines = []
    for row in (row for row in rows if row["gate"] == "f"):
        lines.append(
            f"<li>Layer {row['layer']}: {row['units_mostly_open']} of {row['units']} forget gates are fully open "
            f"more than half of the time (their cells keep what they hold), and {row['units_mostly_shut']} are mostly "
            f"shut (their cells are wiped at almost every step).</li>"
        )
    return "<p><b>Reading it:</b></p><ul>" + "".join(lines) + "</ul>"


def _memory_reading(rows: list[dict]) -> str:
    lines = []
    for row in rows:
        half_life = "never (its forget gate is 1)" if math.isinf(row["half_life_median"]) else f"{row['half_life_median']:.1f} steps"
        lines.append(
            f"<li>Layer {row['layer']}: the typical (median) unit loses half of its cell in {half_life}; the "
            f"longest-remembering unit keeps more than half for {row['span_max']:.1f} steps on average "
            f"(counted up to {row['max_lag']}).</li>"
        )
    return "<p><b>Reading it:</b></p><ul>" + "".join(lines) + "</ul>"


def write_report(
    recording: Recording,
    out_dir: str | Path,
    *,
    title: str = "Inside an LSTM",
    summary: str | dict | None = None,
    top: int = 2,
    extra_sections: Sequence[ReportSection] = (),
    max_steps: int = 600,
    max_lag: int | None = None,
    text_features: bool = True,
    highlight: tuple[int, int, int] | tuple[int, int, int, str] | None = None,
) -> Path:
    """Write `out_dir/report.html` and the PNGs it shows; return the report's path.

    The recording's first sequence is shown; its text pieces (if any) are the text, else
    each step shows as a small square. At most `max_steps` steps go into the coloured
    text (all steps go into the statistics). `top` units are listed per built-in text
    feature (set `text_features=False` when the pieces are not text, e.g. task symbols).
    `highlight` = (layer, direction, unit[, quantity]) is what the explorer opens on
    (default: the best feature-tracking unit's c).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pieces = list(recording.pieces) if recording.pieces is not None else ["\u25aa"] * recording.num_steps
    pieces = pieces[:max_steps]
    if text_features:
        cards, units = _unit_cards(recording, top, max_steps)
        cards = f"<h2>Units that follow something in the text</h2>\n<div class=\"caption\">{captions.INTERPRETABLE}</div>\n{cards}"
    else:
        cards, units = "", []
    first_unit = units[0] if units else {"layer": 0, "direction": 0, "unit": 0, "quantity": "c"}
    if highlight is not None:
        layer, direction, unit, *quantity = highlight
        first_unit = {"layer": layer, "direction": direction, "unit": unit, "quantity": quantity[0] if quantity else "c"}
    extras = []
    for section in extra_sections:
        image = _image_tag(section.image, section.title) if section.image is not None else ""
        extras.append(f"<h2>{_escape(section.title)}</h2><div class=\"caption\">{section.caption_html}</div>{image}")
    shown = f"the first {len(pieces)} of {recording.num_steps} steps" if len(pieces) < recording.num_steps else "all steps"
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_escape(title)}</title>
<style>{REPORT_CSS}</style>
</head>
<body>
<h1>{_escape(title)}</h1>
<div class="caption">{captions.INTRODUCTION}</div>
<p class="note">Input: {recording.num_steps} steps, {recording.num_layers} layer(s),
{recording.num_directions} direction(s), {recording.hidden_size(0)} units per layer; the coloured text shows {shown}.</p>
<noscript><p><strong>This page needs JavaScript to colour the text; the plots below work without it.</strong></p></noscript>
{_explorer(recording, first_unit)}
{cards}
{''.join(extras)}
{_statistics_sections(recording, out_dir, max_lag)}
<h2>The model</h2>
<div class="caption">{captions.SUMMARY}</div>
{_summary_html(summary)}
{_data_script(recording, pieces, len(pieces))}
<script>{REPORT_JS}</script>
</body>
</html>
"""
    path = out_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
