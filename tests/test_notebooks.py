"""The committed notebooks: executed, narrative, small, and free of dataset faces and local paths.

(nbval runs each notebook; these checks are about what is committed.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bplf import settings
from bplf.course.guard import leaks

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))
#: Folders of this machine that a committed output must not reveal.
LOCAL_DIRS = {str(p) for p in (ROOT.resolve(), ROOT.resolve().parent, Path.home(),
                               Path(tempfile.gettempdir()), settings.raw_dir().resolve())}


def _outputs_text(cell: dict) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts.append("".join(out.get("text", "")))
        for mime, value in out.get("data", {}).items():
            if mime.startswith("text/"):
                parts.append("".join(value))
        parts.append("".join(out.get("traceback", [])))
    return "\n".join(parts)


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ should hold the lessons"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_executed_and_clean(path: Path):
    nb = json.loads(path.read_text())
    cells = nb["cells"]
    opening = " ".join("".join(cells[0]["source"]).lower().split())
    assert cells[0]["cell_type"] == "markdown" and "you will" in opening, (
        "a lesson opens by saying what the learner will understand and do")
    code = [c for c in cells if c["cell_type"] == "code"]
    shown = [c for c in code if "dataset-faces" not in c.get("metadata", {}).get("tags", [])]
    executed = [c for c in shown if c.get("execution_count")]
    assert len(executed) == len(shown), f"{len(shown) - len(executed)} code cells were not run"
    counts = [c["execution_count"] for c in executed]
    assert counts == sorted(counts), "cells were run out of order"
    assert not any(o.get("output_type") == "error" for c in code for o in c.get("outputs", []))
    assert path.stat().st_size < 2.5e6, f"{path.name} is {path.stat().st_size / 1e6:.1f} MB"
    for c in code:
        if "dataset-faces" in c.get("metadata", {}).get("tags", []):
            assert not c.get("outputs"), "outputs showing dataset faces must be stripped"
        text = _outputs_text(c)
        leaks = [d for d in LOCAL_DIRS if d + "/" in text]
        assert not leaks, f"an output shows a local path: {leaks}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_holds_no_dataset_face(path: Path):
    """No image but figures of untagged cells: none in metadata, attachments or widgets.

    Cells that show faces from the licensed datasets are tagged ``dataset-faces``; the other
    figures show aggregates (mean faces, eigenfaces), generated faces, curves and tables.
    """
    found = leaks(json.loads(path.read_text(encoding="utf-8")))
    assert not found, (f"{path.name} may show a dataset face (run `python -m bplf "
                       "strip-notebooks` on it):\n" + "\n".join(f"  {f.where}: {f.what}"
                                                                  for f in found))


def test_readme_lists_every_notebook():
    readme = (ROOT / "README.md").read_text()
    for path in NOTEBOOKS:
        assert f"notebooks/{path.name}" in readme, f"README.md does not link {path.name}"


def test_two_runs_of_notebook_04_at_once(tmp_path):
    """Notebook 04 trains, then resumes and checks its log has every step once: two kernels
    running it on one checkout at once each train into a folder of their own."""
    nb = json.loads((ROOT / "notebooks" / "04_train_bplf.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    last = next(i for i, c in enumerate(code) if "no gap, no repeat" in "".join(c["source"]))
    nb["cells"] = code[:last + 1]  # up to the resume check
    runs = tmp_path / "runs"
    env = {**os.environ, "BPLF_QUICK": "1", "BPLF_PROGRESS": "0", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg", "BPLF_RUNS_DIR": str(runs)}
    procs = []
    for k in range(2):
        path = tmp_path / f"copy{k}.ipynb"
        path.write_text(json.dumps(nb))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
             "--inplace", "--ExecutePreprocessor.timeout=1200", str(path)],
            cwd=ROOT / "notebooks", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True))
    logs = [p.communicate(timeout=1800)[0] for p in procs]
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log[-3000:]
    folders = sorted((runs / "04_train").iterdir())
    assert len(folders) == 2 and all((f / "checkpoint.pt").is_file() for f in folders)
