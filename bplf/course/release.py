"""The student release of the notebooks, made and graded with nbgrader's preprocessors.

The committed notebooks are the instructor's copies: each exercise is an nbgrader solution cell
(the answer between ``### BEGIN SOLUTION`` and ``### END SOLUTION``) followed by a graded check
cell. :func:`make_student` writes the student copies (solutions replaced by nbgrader's stub,
hidden tests and outputs removed, check cells locked and checksummed) into ``release/``;
:func:`autograde` executes a notebook and scores its check cells as ``nbgrader autograde``
does, without a gradebook database; :func:`grade` grades a folder of submissions with it, in
parallel, and writes a grades table and a feedback copy of each (``python -m bplf grade``). The
grading settings (quick mode, cell timeouts) live in ``nbgrader_config.py``, which nbgrader's own
``autograde`` reads too.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import nbformat
from nbformat import NotebookNode
from traitlets.config.loader import PyFileConfigLoader

from bplf.settings import REPO_ROOT
from bplf.utils import atomic_write

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
RELEASE_DIR = REPO_ROOT / "release"
#: nbgrader's config of the course: the settings graded kernels run under (both routes)
CONFIG_FILE = REPO_ROOT / "nbgrader_config.py"
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


def grading_config(path: Path | str = CONFIG_FILE):
    """The traitlets config graded kernels run under, read from ``nbgrader_config.py``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: nbgrader's config of the course is missing (it sets the "
                                "grading's quick mode and cell timeouts); restore it from git")
    return PyFileConfigLoader(path.name, path=str(path.parent)).load_config()


def autograde(nb: NotebookNode, cwd: Path | str = NOTEBOOKS_DIR,
              timeout: int | None = None) -> Grades:
    """Execute ``nb`` (errors do not stop it) under ``nbgrader_config.py``'s settings (quick mode,
    its cell timeout unless ``timeout`` is given) and score every graded cell as nbgrader does:
    full points without an error (or stderr output), none with one."""
    from nbgrader.preprocessors import ClearOutput, Execute
    from nbgrader.utils import determine_grade, is_grade

    nb = copy.deepcopy(nb)
    resources = {"metadata": {"path": str(cwd)}}
    nb, resources = ClearOutput().preprocess(nb, resources)
    execute = Execute(config=grading_config(), **({"timeout": timeout} if timeout else {}))
    nb, resources = execute.preprocess(nb, resources)
    scores, max_scores = {}, {}
    for cell in nb.cells:
        if is_grade(cell):
            score, top = determine_grade(cell)
            grade_id = _nbgrader(cell)["grade_id"]
            scores[grade_id], max_scores[grade_id] = float(score or 0.0), float(top)
    return Grades(scores, max_scores, nb)


def lesson_of(nb: NotebookNode, where: str = "notebook") -> Path:
    """The instructor notebook a submission is a copy of: the one that shares its grade ids."""
    ids = {_nbgrader(c).get("grade_id") for c in nb.cells} - {None}
    best, shared = None, 0
    for path in sorted(NOTEBOOKS_DIR.glob("0*.ipynb")):
        n = len(ids & {_nbgrader(c).get("grade_id") for c in read(path).cells})
        if n > shared:
            best, shared = path, n
    if best is None:
        raise ValueError(f"{where}: no exercise of the course in it (no nbgrader grade id of "
                         "notebooks/0*.ipynb): is it a copy of a lesson?")
    return best


def restore_checks(nb: NotebookNode, source: NotebookNode) -> NotebookNode:
    """``nb`` with its check cells (graded or locked, not solutions) replaced by the source's,
    hidden tests included, as ``nbgrader autograde`` does: an edited check grades the same."""
    checks = {_nbgrader(c)["grade_id"]: c for c in source.cells
              if _nbgrader(c).get("grade_id") and not _nbgrader(c).get("solution")}
    nb = copy.deepcopy(nb)
    for i, cell in enumerate(nb.cells):
        grade_id = _nbgrader(cell).get("grade_id")
        if grade_id in checks:
            nb.cells[i] = copy.deepcopy(checks[grade_id])
    return nb


def find_submissions(folder: Path | str) -> list[tuple[str, Path]]:
    """(student, notebook) of every submission under ``folder``: ``STUDENT/ASSIGNMENT/*.ipynb``
    (nbgrader's ``submitted/``), ``STUDENT/*.ipynb``, or ``*.ipynb`` named after the student."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of submissions")
    found = []
    for path in sorted(folder.rglob("*.ipynb")):
        rel = path.relative_to(folder)
        if ".ipynb_checkpoints" not in rel.parts:
            found.append((rel.parts[0] if len(rel.parts) > 1 else path.stem, path))
    if not found:
        raise FileNotFoundError(f"{folder}: no notebook (*.ipynb) in it")
    return found


def default_workers(jobs: int) -> int:
    """Gradings at once: one per CPU core, each kernel with one thread and about 3 GiB."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        with open("/proc/meminfo") as f:
            free = next(int(ln.split()[1]) for ln in f if ln.startswith("MemAvailable")) * 1024
        cores = min(cores or 1, max(1, free // (3 * 2**30)))
    except (OSError, StopIteration):
        pass
    return max(1, min(cores or 1, jobs))


def _grade_one(student: str, path: Path, feedback: Path, exercises_only: bool) -> dict:
    start = time.perf_counter()
    nb = read(path)
    source = read(lesson_of(nb, str(path)))
    nb = restore_checks(nb, source)
    graded = autograde(grading_notebook(nb) if exercises_only else nb)
    atomic_write(feedback, lambda tmp: nbformat.write(graded.notebook, str(tmp)))
    errors = [e for _, e in graded.errors()]
    row = {"student": student, "notebook": path.name, "lesson": lesson_of(nb).stem}
    for ex in exercises(source):  # a column per exercise (the guide's ids), its check's points
        row[ex.grade_id] = graded.scores.get(_nbgrader(source.cells[ex.check])["grade_id"], 0.0)
    row.update(score=sum(row[ex.grade_id] for ex in exercises(source)),
               max_score=sum(ex.points for ex in exercises(source)),
               timeouts=sum(e.startswith("CellTimeoutError") for e in errors),
               seconds=round(time.perf_counter() - start, 1))
    return row


def grade(folder: Path | str, out: Path | str, workers: int | None = None,
          exercises_only: bool = False) -> list[dict]:
    """Grade every submission under ``folder`` (see :func:`find_submissions`) as ``nbgrader
    autograde`` does, ``workers`` at once (default: :func:`default_workers`). Writes
    ``out/grades.csv`` (a row per submission: points per exercise, total, timeouts, seconds)
    and ``out/feedback/``, the executed copy of each submission at its path under ``folder``.
    With ``exercises_only``, only the set-up cell and the exercises run (seconds, not minutes;
    but an answer that uses a variable of the lesson fails)."""
    folder, out = Path(folder), Path(out)
    jobs = [(student, path, out / "feedback" / path.relative_to(folder), exercises_only)
            for student, path in find_submissions(folder)]
    workers = workers or default_workers(len(jobs))
    rows = []
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_grade_one, *job) for job in jobs]
        for (student, path, *_), future in zip(jobs, futures, strict=True):
            try:
                row = future.result()
            except Exception as err:  # one unreadable submission does not stop the class
                row = {"student": student, "notebook": path.name,
                       "error": f"{type(err).__name__}: {err}"}
                print(f"{student} / {path.name}: NOT GRADED: {row['error']}", flush=True)
            else:
                print(f"{student} / {path.name}: {row['score']:g} of {row['max_score']:g} "
                      f"points ({row['seconds']:.0f} s)"
                      + (f", {row['timeouts']} cell timeouts: raise c.Execute.timeout in "
                         "nbgrader_config.py" if row["timeouts"] else ""), flush=True)
            rows.append(row)
    columns = list(dict.fromkeys(k for row in rows for k in row))

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, columns, restval="")
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(out / "grades.csv", write)
    return rows


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
