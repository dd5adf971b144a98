"""Export a trained run's graphs (what `lstmlab export RUN --format onnx` does).

    results = export_run("runs/lm-20261203", out="runs/lm-20261203/onnx")
    for path, report in results: print(path, report.summary() if report else "not checked")

The run's recipe names its graphs (`Recipe.onnx_graphs`); each is written to
OUT/NAME.onnx with the files it needs beside it (an LM's tokenizer), OUT/export.json lists
them, and an LM export also gets a copy of `lstmlab/deploy.py`, the torch-free driver.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from lstmlab.export.check import CheckReport, check_onnx


def default_folder(run_path: str | Path) -> Path:
    """RUN/onnx for a run folder; beside the checkpoint (NAME-onnx) for a .pt file."""
    path = Path(run_path)
    return path / "onnx" if path.is_dir() else path.with_name(path.stem + "-onnx")


def export_run(run_path: str | Path, out: str | Path | None = None, *, check: bool = True,
               run=None) -> list[tuple[Path, CheckReport | None]]:
    """Write the run's graphs into `out` (default `default_folder`) and check each one."""
    import lstmlab
    from lstmlab import recipes

    run = run if run is not None else lstmlab.load(run_path)
    specs = recipes.get(run.recipe).onnx_graphs(run)
    folder = Path(out) if out is not None else default_folder(run_path)
    results = []
    for name, spec in specs.items():
        path = spec.save(folder / f"{name}.onnx")
        results.append((path, check_onnx(path, spec) if check else None))
    listing = {"recipe": run.recipe, "checkpoint": str(run.checkpoint),
               "graphs": {name: f"{name}.onnx" for name in specs},
               "files": sorted({file for spec in specs.values() for file in spec.files})}
    if "lm_step" in specs:  # the torch-free driver travels with the LM graph
        shutil.copyfile(Path(__file__).resolve().parent.parent / "deploy.py", folder / "deploy.py")
        listing["files"].append("deploy.py")
    (folder / "export.json").write_text(json.dumps(listing, indent=2) + "\n")
    return results
