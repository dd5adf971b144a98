"""What an export is: the graph, how to feed it, what it must equal, and the file's marks.

An `ExportSpec` carries one ONNX graph with a sampler of inputs at any (batch, length)
and the PyTorch reference that computes the same outputs, so `check_onnx` can compare
the two on sizes other than the exported ones. Every lstmlab export carries, in the
model's ``metadata_props``, the key ``lstmlab.export`` holding a JSON description
(`DESCRIPTION_KEY`): its kind, inputs and outputs (name, dtype, shape with named
dynamic axes), which output is an output, a state or a trace field, and the length
it was exported at; ``producer_name`` is "lstmlab".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx

DESCRIPTION_KEY = "lstmlab.export"
FORMAT = "lstmlab.onnx/1"
GROUPS = ("outputs", "states", "trace")

Arrays = dict[str, np.ndarray]


class NotAnExport(ValueError):
    """An ONNX file that lstmlab did not write (no `lstmlab.export` description)."""


@dataclass
class ExportSpec:
    """One exportable graph (see the module docstring).

    sample(batch, length, rng) -> the graph's inputs as numpy arrays (length: time steps,
    or ignored for a one-step graph); reference(inputs) -> the expected outputs.
    """

    name: str  # file stem: NAME.onnx
    model: onnx.ModelProto
    sample: Callable[[int, int, np.random.Generator], Arrays]
    reference: Callable[[Arrays], Arrays]
    files: dict[str, str | bytes] = field(default_factory=dict)  # written beside the graph (tokenizer, ...)

    @property
    def description(self) -> dict[str, Any]:
        return read_description(self.model)

    def save(self, path: str | Path) -> Path:
        """Write the graph to `path` (and its `files` into the same folder)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(self.model, str(path))
        for name, content in self.files.items():
            target = path.parent / name
            target.write_bytes(content) if isinstance(content, bytes) else target.write_text(content)
        return path


def describe(kind: str, inputs: list[dict], outputs: list[dict], length: int, **extra) -> dict[str, str]:
    """The metadata_props of an export: {DESCRIPTION_KEY: JSON}.

    inputs / outputs: [{"name", "dtype", "shape", "group" (outputs only)}], shapes with
    "batch" / "time" (or other names) for the dynamic axes.
    """
    for entry in outputs:
        if entry.get("group") not in GROUPS:
            raise ValueError(f"output {entry['name']!r}: expected a group in {GROUPS}, got {entry.get('group')!r}")
    description = {"format": FORMAT, "kind": kind, "inputs": inputs, "outputs": outputs, "length": length, **extra}
    return {DESCRIPTION_KEY: json.dumps(description)}


def read_description(model: onnx.ModelProto, source: str = "the model") -> dict[str, Any]:
    """The JSON description of an lstmlab export; NotAnExport for any other ONNX model."""
    props = {entry.key: entry.value for entry in model.metadata_props}
    if model.producer_name != "lstmlab" or DESCRIPTION_KEY not in props:
        producer = model.producer_name or "no producer"
        raise NotAnExport(f"{source}: not an lstmlab export (expected producer 'lstmlab' and a "
                          f"{DESCRIPTION_KEY!r} metadata entry, found {producer!r} and metadata keys "
                          f"{sorted(props) or 'none'}); check_onnx compares lstmlab exports only")
    try:
        description = json.loads(props[DESCRIPTION_KEY])
    except json.JSONDecodeError as error:
        raise NotAnExport(f"{source}: damaged {DESCRIPTION_KEY!r} metadata ({error})") from None
    if description.get("format") != FORMAT:
        raise NotAnExport(f"{source}: expected export format {FORMAT!r}, got {description.get('format')!r}")
    return description


def load_export(path: str | Path) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """(model, description) of an ONNX file; clear errors for missing, unreadable or foreign files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(str(path))
    except Exception as error:  # onnx raises DecodeError and others for non-ONNX bytes
        raise NotAnExport(f"{path}: not an ONNX model ({type(error).__name__}: {error})") from None
    return model, read_description(model, str(path))
