"""The student release of the notebooks, made and graded with nbgrader's preprocessors.

The committed notebooks are the instructor's copies: each exercise is an nbgrader solution cell
(the answer between ``### BEGIN SOLUTION`` and ``### END SOLUTION``) followed by a graded check
cell. :func:`make_student` writes the student copies (solutions replaced by nbgrader's stub,
hidden tests and outputs removed, check cells locked and checksummed) into ``release/``;
:func:`autograde` executes a notebook and scores its check cells as ``nbgrader autograde``
does, without a gradebook database.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from bplf.settings import REPO_ROOT

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
RELEASE_DIR = REPO_ROOT / "release"
#: the nbgrader version the exercises' metadata was written for (``schema_version`` 3)
NBGRADER_VERSION = "0.9.6"


@dataclass(frozen=True)
class Exercise:
    """One exercise of a notebook: its solution cell, the check cell after it, its points."""

    grade_id: str
    solution: int
    check: int
    points: float


def _nbgrader(cell: NotebookNode) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def exercises(nb: NotebookNode) -> list[Exercise]:
    """The exercises of a notebook, in order: each solution cell with the next graded cell."""
    out = []
    cells = nb.cells
    for i, cell in enumerate(cells):
        if _nbgrader(cell).get("solution"):
            j = next(k for k in range(i + 1, len(cells)) if _nbgrader(cells[k]).get("grade"))
            out.append(Exercise(_nbgrader(cell)["grade_id"], i, j,
                                float(_nbgrader(cells[j])["points"])))
    return out


def read(path: Path | str) -> NotebookNode:
    return nbformat.read(str(path), as_version=4)


def student_version(nb: NotebookNode) -> NotebookNode:
    """The student copy of an instructor notebook: nbgrader's ``generate_assignment``
    preprocessors but the gradebook (ClearSolutions, ClearHiddenTests, ClearMarkScheme,
    ClearOutput, LockCells, ComputeChecksums, CheckCellMetadata)."""
    from nbgrader.preprocessors import (
        CheckCellMetadata,
        ClearHiddenTests,
        ClearMarkScheme,
        ClearOutput,
        ClearSolutions,
        ComputeChecksums,
        LockCells,
    )

    nb = copy.deepcopy(nb)
    resources: dict = {}
    for pre in (CheckCellMetadata(), LockCells(), ClearSolutions(), ClearOutput(),
                ClearHiddenTests(), ClearMarkScheme(), ComputeChecksums(), CheckCellMetadata()):
        nb, resources = pre.preprocess(nb, resources)
    for cell in nb.cells:  # the committed copies carry run counts: a student's starts fresh
        if cell.cell_type == "code":
            cell.execution_count = None
    return nb


def make_student(out: Path | str = RELEASE_DIR, notebooks: list[Path] | None = None) -> list[Path]:
    """Write the student copy of each notebook (default: every lesson) into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks or sorted(NOTEBOOKS_DIR.glob("0*.ipynb")):
        dest = out / Path(path).name
        tmp = dest.with_suffix(".ipynb.tmp")
        nbformat.write(student_version(read(path)), str(tmp))
        tmp.replace(dest)
        written.append(dest)
    return written


def grading_notebook(nb: NotebookNode, upto_first_exercise: bool = False) -> NotebookNode:
    """A shorter notebook that grades the same: the first code cell (the lesson's imports and
    set-up) and every nbgrader cell, in order. With ``upto_first_exercise``, every cell before
    the first exercise is kept (so it also shows that a copy runs up to there)."""
    nb = copy.deepcopy(nb)
    found = exercises(nb)
    first = found[0].solution if found else len(nb.cells)
    setup = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    keep = [i for i, c in enumerate(nb.cells)
            if (upto_first_exercise and i < first) or i == setup or (i >= first and _nbgrader(c))]
    nb.cells = [nb.cells[i] for i in keep]
    return nb


@dataclass
class Grades:
    """What autograding found: points per check cell, and the executed notebook."""

    scores: dict[str, float]
    max_scores: dict[str, float]
    notebook: NotebookNode

    @property
    def score(self) -> float:
        return sum(self.scores.values())

    @property
    def max_score(self) -> float:
        return sum(self.max_scores.values())

    def errors(self) -> list[tuple[int, str]]:
        """(cell index, "error name: message") of every cell that raised."""
        return [(i, f"{o.get('ename')}: {o.get('evalue')}")
                for i, c in enumerate(self.notebook.cells) if c.cell_type == "code"
                for o in c.get("outputs", []) if o.get("output_type") == "error"]


def autograde(nb: NotebookNode, cwd: Path | str = NOTEBOOKS_DIR, timeout: int = 600) -> Grades:
    """Execute ``nb`` (errors do not stop it) and score every graded cell as nbgrader does:
    full points without an error (or stderr output), none with one."""
    from nbgrader.preprocessors import ClearOutput, Execute
    from nbgrader.utils import determine_grade, is_grade

    nb = copy.deepcopy(nb)
    resources = {"metadata": {"path": str(cwd)}}
    nb, resources = ClearOutput().preprocess(nb, resources)
    nb, resources = Execute(timeout=timeout).preprocess(nb, resources)
    scores, max_scores = {}, {}
    for cell in nb.cells:
        if is_grade(cell):
            score, top = determine_grade(cell)
            grade_id = _nbgrader(cell)["grade_id"]
            scores[grade_id], max_scores[grade_id] = float(score or 0.0), float(top)
    return Grades(scores, max_scores, nb)


def summary(notebooks: list[Path] | None = None) -> list[dict]:
    """One row per exercise: notebook, grade id, points (for the guide and ``--list``)."""
    rows = []
    for path in notebooks or sorted(NOTEBOOKS_DIR.glob("0*.ipynb")):
        for ex in exercises(read(path)):
            rows.append({"notebook": Path(path).name, "exercise": ex.grade_id,
                         "points": ex.points})
    return rows


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(summary(), indent=1))
