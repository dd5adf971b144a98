"""The CSS and JavaScript inlined into report.html (kept here so report.py stays readable).

The script reads the JSON block `#lstm-data`: `pieces` (text of each step), `steps`,
`layers[l].hidden` (H), `sizes["l/q"]` (features per direction: H, or proj_size for h), `blocks["l/q"]` = base64 of an int8 matrix (rows = units,
columns = steps) and `scales["l/q"]` = per-row scale: value = int8 / 127 * scale.
"""

REPORT_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
       max-width: 1100px; padding: 1.2em 1.6em 4em; color: #1d1d1f; background: #ffffff; line-height: 1.45; }
h1 { margin-bottom: 0.2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
p.caption, div.caption { color: #333; max-width: 60em; }
.note { color: #666; font-size: 0.9em; }
.controls { display: flex; flex-wrap: wrap; gap: 0.8em 1.4em; align-items: center; margin: 0.6em 0;
            padding: 0.6em 0.8em; background: #f4f4f6; border-radius: 6px; }
.controls label { font-weight: 600; }
.controls select, .controls input { font-size: 1em; margin-left: 0.3em; }
.text { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; white-space: pre-wrap; word-break: break-all;
        font-size: 14px; line-height: 1.6; border: 1px solid #ddd; border-radius: 6px; padding: 0.6em 0.8em;
        max-height: 24em; overflow-y: auto; background: #fff; }
.text span { border-radius: 2px; }
.text span.feature-on { text-decoration: underline; text-decoration-thickness: 2px; text-underline-offset: 3px; }
.hover-info { font-family: monospace; min-height: 1.4em; color: #333; margin-top: 0.3em; }
.legend { display: inline-block; width: 12em; height: 0.9em; vertical-align: middle; border: 1px solid #ccc; margin: 0 0.4em; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f4f4f6; }
td.left, th.left { text-align: left; }
img.plot { max-width: 100%; border: 1px solid #eee; }
.unit-card { margin: 1em 0 1.6em; }
.unit-card h3 { font-size: 1em; margin: 0 0 0.3em; }
pre.summary { background: #f4f4f6; padding: 0.8em; border-radius: 6px; overflow-x: auto; font-size: 0.85em; }
button { font-size: 0.9em; }
"""

REPORT_JS = r"""
"use strict";
const DATA = JSON.parse(document.getElementById("lstm-data").textContent);
const decoded = {};

function block(layer, quantity) {
  const key = layer + "/" + quantity;
  if (!(key in decoded)) {
    const binary = atob(DATA.blocks[key]);
    const values = new Int8Array(binary.length);
    for (let index = 0; index < binary.length; index++) {
      values[index] = (binary.charCodeAt(index) << 24) >> 24;
    }
    decoded[key] = values;
  }
  return decoded[key];
}

// Values of one unit (row) over time, in the quantity's own units.
function unitValues(layer, quantity, row) {
  const values = block(layer, quantity);
  const scale = DATA.scales[layer + "/" + quantity][row];
  const result = new Float32Array(DATA.steps);
  for (let step = 0; step < DATA.steps; step++) {
    result[step] = values[row * DATA.steps + step] / 127 * scale;
  }
  return {values: result, scale: scale};
}

// Gates (0..1): white to green. c, h, g: blue (negative) - white - red (positive).
function colour(quantity, value, scale) {
  if (quantity === "i" || quantity === "f" || quantity === "o") {
    const amount = Math.max(0, Math.min(1, value));
    return "rgb(" + Math.round(255 - 220 * amount) + "," + Math.round(255 - 95 * amount) + "," + Math.round(255 - 200 * amount) + ")";
  }
  const limit = quantity === "c" ? (scale || 1) : 1;
  const amount = Math.max(-1, Math.min(1, value / limit));
  if (amount >= 0) {
    return "rgb(255," + Math.round(255 - 200 * amount) + "," + Math.round(255 - 200 * amount) + ")";
  }
  return "rgb(" + Math.round(255 + 200 * amount) + "," + Math.round(255 + 150 * amount) + ",255)";
}

function buildText(container, info) {
  const fragment = document.createDocumentFragment();
  DATA.pieces.forEach(function (piece, step) {
    const span = document.createElement("span");
    span.textContent = piece;
    span.dataset.step = step;
    fragment.appendChild(span);
  });
  container.appendChild(fragment);
  container.addEventListener("mouseover", function (event) {
    const step = event.target.dataset ? event.target.dataset.step : undefined;
    if (step === undefined || !container.current) { return; }  // nothing painted (e.g. projected h)
    const value = container.current.values[step];
    info.textContent = "step " + step + "  " + JSON.stringify(DATA.pieces[step]) + "  " +
      container.current.quantity + " = " + value.toFixed(3);
  });
}

function paint(container, layer, quantity, direction, unit) {
  // h has proj_size features when the LSTM projects: fewer than the cell's units
  const features = DATA.sizes[layer + "/" + quantity];
  if (unit >= features) {
    container.current = null;
    for (const span of container.children) { span.style.backgroundColor = "#eeeeee"; }
    return false;
  }
  const series = unitValues(layer, quantity, direction * features + unit);
  series.quantity = quantity;
  container.current = series;
  const spans = container.children;
  for (let step = 0; step < spans.length; step++) {
    spans[step].style.backgroundColor = colour(quantity, series.values[step], series.scale);
  }
  return true;
}

function setupExplorer() {
  const container = document.getElementById("explorer-text");
  const info = document.getElementById("explorer-info");
  const layerSelect = document.getElementById("pick-layer");
  const directionSelect = document.getElementById("pick-direction");
  const unitInput = document.getElementById("pick-unit");
  const quantitySelect = document.getElementById("pick-quantity");
  buildText(container, info);
  function update() {
    const layer = Number(layerSelect.value);
    const hidden = DATA.layers[layer].hidden;
    unitInput.max = hidden - 1;
    const unit = Math.max(0, Math.min(hidden - 1, Number(unitInput.value) || 0));
    unitInput.value = unit;
    const shown = paint(container, layer, quantitySelect.value, Number(directionSelect.value), unit);
    document.getElementById("explorer-title").textContent =
      "layer " + layer + (DATA.directions > 1 ? (directionSelect.value === "1" ? ", backward" : ", forward") : "") +
      ", unit " + unit + ": " + DATA.quantityNames[quantitySelect.value] +
      (shown ? "" : " (none: h is projected to " + DATA.sizes[layer + "/" + quantitySelect.value] + " features)");
  }
  [layerSelect, directionSelect, unitInput, quantitySelect].forEach(function (element) {
    element.addEventListener("change", update);
    element.addEventListener("input", update);
  });
  document.querySelectorAll("button[data-show]").forEach(function (button) {
    button.addEventListener("click", function () {
      const target = JSON.parse(button.dataset.show);
      layerSelect.value = target.layer;
      directionSelect.value = target.direction;
      unitInput.value = target.unit;
      quantitySelect.value = target.quantity;
      update();
      container.scrollIntoView({behavior: "smooth", block: "center"});
    });
  });
  update();
}

function setupUnitCards() {
  document.querySelectorAll(".unit-text").forEach(function (container) {
    const target = JSON.parse(container.dataset.unit);
    const info = container.parentNode.querySelector(".hover-info");
    buildText(container, info);
    paint(container, target.layer, target.quantity, target.direction, target.unit);
    const marks = container.dataset.on || "";  // one 0/1 character per step: where the feature is on
    for (let step = 0; step < marks.length && step < container.children.length; step++) {
      if (marks[step] === "1") { container.children[step].classList.add("feature-on"); }
    }
  });
}

setupExplorer();
setupUnitCards();
document.body.dataset.rendered = "yes";
"""
