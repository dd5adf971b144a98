"""`check_onnx`: ONNX Runtime (CPU) against the PyTorch reference, at sizes other than the exported ones.

    report = check_onnx("lstm.onnx", module)      # an lstmlab.LSTM, or an ExportSpec
    print(report)                                  # max abs error per (batch, length) and group
    assert report.max_error <= 1e-5

The lengths are 1, the exported length T and 4T; a one-step graph (the LM step, the
streaming acoustic step) runs that many chained steps instead, its state outputs fed back as
the next step's inputs on each side (the driver's loop); the decoder step chains 3. The batch
sizes are 1 and 3 by default (the exported graph has no fixed batch). Errors are grouped as the
export's description groups its outputs: outputs, states, trace. Equal infinities (masked
logits) count as no error; a NaN on one side only is an infinite error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lstmlab.export.spec import GROUPS, ExportSpec, load_export

TOLERANCE = 1e-5  # float32 parity target of the exports


@dataclass
class CheckReport:
    """Max abs errors of one exported graph, per (batch, length) and per output group."""

    path: str
    rows: list[tuple[int, int, dict[str, float]]] = field(default_factory=list)  # (batch, length, group -> error)
    tolerance: float = TOLERANCE

    def group_error(self, group: str) -> float:
        errors = [row[2][group] for row in self.rows if group in row[2]]
        return max(errors) if errors else 0.0

    @property
    def max_error(self) -> float:
        return max((error for _, _, errors in self.rows for error in errors.values()), default=0.0)

    @property
    def passed(self) -> bool:
        return self.max_error <= self.tolerance

    def summary(self) -> str:
        """One line: the max error of each group over every size checked."""
        groups = [g for g in GROUPS if any(g in errors for _, _, errors in self.rows)]
        sizes = sorted({(b, t) for b, t, _ in self.rows})
        parts = ", ".join(f"{g} {self.group_error(g):.2e}" for g in groups)
        verdict = "ok" if self.passed else f"FAILED (tolerance {self.tolerance:.0e})"
        return (f"{Path(self.path).name}: max abs error {parts} over (batch, length) "
                f"{', '.join(f'({b}, {t})' for b, t in sizes)}: {verdict}")

    def __str__(self) -> str:
        lines = [self.summary()]
        for batch, length, errors in self.rows:
            lines.append(f"  batch {batch}, length {length}: " + ", ".join(f"{g} {e:.2e}" for g, e in errors.items()))
        return "\n".join(lines)


def max_abs_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |actual - expected|, with equal infinities as 0 and one-sided NaN/inf as inf."""
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        raise AssertionError(f"shape: ONNX Runtime gave {actual.shape}, PyTorch {expected.shape}")
    if actual.size == 0:
        return 0.0
    same = (actual == expected) | (np.isnan(actual) & np.isnan(expected))
    with np.errstate(invalid="ignore"):  # inf - inf where only one side is inf: NaN, counted as inf below
        difference = np.where(same, 0.0, np.abs(actual - expected))
    difference = np.where(np.isnan(difference), np.inf, difference)
    return float(difference.max())


def session(path_or_model):
    """An ONNX Runtime CPU session of a file or ModelProto (one thread: small graphs, shared cores)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    source = str(path_or_model) if isinstance(path_or_model, (str, Path)) else path_or_model.SerializeToString()
    return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def check_onnx(path: str | Path, reference, *, batch_sizes: tuple[int, ...] = (1, 3),
               lengths: tuple[int, ...] | None = None, seed: int = 0, tolerance: float = TOLERANCE) -> CheckReport:
    """Compare the lstmlab export at `path` with `reference` in ONNX Runtime (see the module doc).

    reference: the `lstmlab.LSTM` (or LSTMCell) it was exported from (its options are read from the
    file's description), or the `ExportSpec` that wrote it (recipe graphs).
    Raises NotAnExport (a ValueError) for a file lstmlab did not write.
    """
    _, description = load_export(path)
    spec = _reference_spec(reference, description)
    exported = int(description.get("length") or 1)
    lengths = lengths or (1, exported, 4 * exported)
    runner = session(Path(path))
    output_names = [o["name"] for o in description["outputs"]]
    groups = {o["name"]: o["group"] for o in description["outputs"]}
    carry = description.get("carry") or {}  # step graphs: state output -> the input it feeds next step
    rng = np.random.default_rng(seed)
    report = CheckReport(str(path), tolerance=tolerance)
    for batch in batch_sizes:
        for length in lengths:
            feeds = spec.sample(batch, length, rng)
            # A one-step graph runs `length` chained steps (the driver's loop), each side on its own
            # carried state; other step graphs (the decoder: length = source length) run chain_steps.
            steps = length if description.get("one_step") else int(description.get("chain_steps") or 1)
            ours, theirs = feeds, feeds
            errors: dict[str, float] = {}
            for _ in range(steps if carry else 1):
                actual = dict(zip(output_names, runner.run(output_names, ours)))
                expected = spec.reference(theirs)
                for name in output_names:
                    if name not in expected:
                        raise AssertionError(f"{path}: the reference gave no {name!r} (it gave {sorted(expected)})")
                    group = groups[name]
                    errors[group] = max(errors.get(group, 0.0), max_abs_error(actual[name], expected[name]))
                fresh = {name: value for name, value in spec.sample(batch, length, rng).items()
                         if name in description.get("step_inputs", [])}  # a new token / frames each step
                ours = {**ours, **fresh, **{carry[name]: actual[name] for name in carry}}
                theirs = {**theirs, **fresh, **{carry[name]: expected[name] for name in carry}}
            report.rows.append((batch, length, errors))
    return report


def _reference_spec(reference, description: dict) -> ExportSpec:
    import lstmlab
    from lstmlab.export.module import lstm_spec

    if isinstance(reference, ExportSpec):
        return reference
    if isinstance(reference, lstmlab.LSTMCell):
        from lstmlab.export.module import cell_spec

        if description.get("kind") != "lstm_cell":
            raise ValueError(f"this file is an lstmlab {description.get('kind')!r} export, not an LSTMCell's")
        return cell_spec(reference, trace=bool(description.get("module", {}).get("trace")))
    if isinstance(reference, lstmlab.LSTM):
        if description.get("kind") != "lstm":
            raise ValueError(f"this file is an lstmlab {description.get('kind')!r} export; compare it with the "
                             "ExportSpec that wrote it, not with an lstmlab.LSTM")
        options = description.get("module", {})
        return lstm_spec(reference, trace=bool(options.get("trace")), lengths=bool(options.get("lengths")),
                         length=int(description.get("length") or 1), form=options.get("form", "auto"))
    raise ValueError(f"reference: expected an lstmlab.LSTM, LSTMCell or an ExportSpec, got {type(reference).__name__}")
