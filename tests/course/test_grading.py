"""Grading a class (bplf.course.release.grade, `python -m bplf grade`): made-up submissions, right,
wrong in the typical way of every exercise, and empty, get their points, a grades table and
feedback copies with no timeout and no line of a reference solution in them."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import nbformat
import pytest

from bplf.cli import main
from bplf.course import release

ROOT = Path(__file__).resolve().parents[2]
LESSONS = {p.name[:2]: p for p in sorted((ROOT / "notebooks").glob("0*.ipynb"))}
SOLUTION = re.compile(r"[ \t]*### BEGIN SOLUTION\n(.*?)[ \t]*### END SOLUTION\n", re.S)

#: The typical mistake of each exercise, as an edit of its reference solution (old, new), and
#: what the check's message says about it.
MISTAKES = {
    "ex01_1_rafdb_labels": ("EMOTIONS.index(RAFDB_CODES[int(code)])", "int(code) - 1",
                            "own order, not FER-2013's"),
    "ex01_2_subject_split": ("default_rng(seed)", "default_rng()", "same seed gave different"),
    "ex02_1_elementwise_logdet": ("math.log(A_SA) + ", "", "D log a"),
    "ex02_2_flow_log_prob": ("+ total", "- total", "log"),
    "ex03_1_lu_logdet": ("height * width * ", "", "multiply by H * W"),
    "ex03_2_additive_coupling": ("y_a - self.t(y_b)", "y_a + self.t(y_b)",
                                 "inverse(forward(x)) differs from x"),
    "ex04_1_bits_per_dim": ("-log_p + d * math.log(256)", "-log_p", "exactly 8 bits too low"),
    "ex04_2_train_step": ("    optimizer.zero_grad()\n", "", "gradients accumulate"),
    "ex05_1_interpolation": ("linspace(0, 1, steps, device=za[0].device)",
                             "linspace(0, 1, steps + 1, device=za[0].device)[:-1]",
                             "start at x_a and end at x_b"),
    "ex05_2_prior_edit": ("torch.exp(log_t - log_s) * ", "", "shifted the mean only"),
    "ex06_1_compare": ("va.var() / len(va) + vb.var() / len(vb)", "va.var() + vb.var()",
                       "sqrt(n) times too large"),
    "ex06_2_verdict": ('all(not r["within_noise"] and r["diff"] < 0', 'all(r["diff"] < 0',
                       "is noise"),
}


def submission(lesson: Path, answer: str) -> nbformat.NotebookNode:
    """The student copy of ``lesson`` answered "right" (the reference), "wrong" (the typical
    mistake) or "empty" (the stub left)."""
    instructor = release.read(lesson)
    student = release.student_version(instructor)
    if answer != "empty":
        for ex in release.exercises(instructor):
            code = SOLUTION.sub(lambda m: m.group(1), instructor.cells[ex.solution].source)
            if answer == "wrong":
                old, new, _ = MISTAKES[ex.grade_id]
                assert old in code, f"{ex.grade_id}: the mistake no longer applies"
                code = code.replace(old, new, 1)
            student.cells[ex.solution].source = code
    return student


def outputs_text(nb: nbformat.NotebookNode) -> str:
    return "\n".join(str(o.get(k, "")) for c in nb.cells if c.cell_type == "code"
                     for o in c.get("outputs", []) for k in ("text", "data", "evalue",
                                                             "traceback"))


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> tuple[Path, Path, dict]:
    """A class: "right" and "empty" hand in notebooks 01 and 04 in nbgrader's submitted/
    layout, "wrong" hands in all six in a folder; graded exercises-only, one kernel at a time."""
    root = tmp_path_factory.mktemp("class")
    folder = root / "submitted"
    for answer, lessons in (("right", ("01", "04")), ("empty", ("01", "04")),
                            ("wrong", tuple(LESSONS))):
        for key in lessons:
            path = folder / answer / (f"ps{key}" if answer != "wrong" else "") / LESSONS[key].name
            path.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(submission(LESSONS[key], answer), str(path))
    main(["grade", str(folder), "--out", str(root / "graded"), "--workers", "1",
          "--exercises-only"])
    with open(root / "graded" / "grades.csv") as f:
        rows = {(r["student"], r["lesson"][:2]): r for r in csv.DictReader(f)}
    return folder, root / "graded", rows


def test_scores_of_right_wrong_and_empty_submissions(graded):
    _, out, rows = graded
    assert len(rows) == 4 + len(LESSONS)
    for (student, key), row in rows.items():
        found = release.exercises(release.read(LESSONS[key]))
        assert float(row["max_score"]) == sum(e.points for e in found)
        want = {e.grade_id: e.points if student == "right" else 0.0 for e in found}
        assert {g: float(row[g]) for g in want} == want, (student, key)
        assert float(row["score"]) == sum(want.values()) and row["timeouts"] == "0"


def test_feedback_copies_hold_no_timeout_and_no_reference_solution(graded):
    folder, out, _ = graded
    feedback = sorted((out / "feedback").rglob("*.ipynb"))
    assert [p.relative_to(out / "feedback") for p in feedback] == sorted(
        p.relative_to(folder) for p in folder.rglob("*.ipynb"))
    for path in feedback:
        assert "CellTimeoutError" not in outputs_text(release.read(path)), path
    for lesson in LESSONS.values():
        instructor = release.read(lesson)
        outside = {ln.strip() for c in instructor.cells
                   for ln in SOLUTION.sub("", c.source).splitlines()}
        nb = release.read(out / "feedback" / "wrong" / lesson.name)
        text = outputs_text(nb)
        for ex, fed in zip(release.exercises(instructor), release.exercises(nb), strict=True):
            reference = {ln.strip() for m in SOLUTION.findall(instructor.cells[ex.solution].source)
                         for ln in m.splitlines()} - outside - {""}
            shown = [ln for ln in reference if ln in text]
            assert not shown, f"{ex.grade_id}: the feedback shows the solution's {shown}"
            (error,) = [o for o in nb.cells[fed.check].outputs if o.output_type == "error"]
            assert MISTAKES[ex.grade_id][2] in error.evalue, (ex.grade_id, error.evalue)
            trace = "\n".join(error.traceback)
            assert "in your notebook:" in trace and "Cell In[" in trace, trace
            assert "course/exercises/" not in trace and "_fail(" not in trace, trace


def test_submissions_are_found_in_every_layout(tmp_path):
    for rel in ("ann/ps1/04_train_bplf.ipynb", "bob/04_train_bplf.ipynb", "cat.ipynb",
                "ann/ps1/.ipynb_checkpoints/04_train_bplf-checkpoint.ipynb"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("{}")
    assert [(s, p.relative_to(tmp_path).as_posix()) for s, p in
            release.find_submissions(tmp_path)] == [
        ("ann", "ann/ps1/04_train_bplf.ipynb"), ("bob", "bob/04_train_bplf.ipynb"),
        ("cat", "cat.ipynb")]
    (tmp_path / "none").mkdir()
    with pytest.raises(FileNotFoundError, match="none: no notebook"):
        release.find_submissions(tmp_path / "none")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        release.find_submissions(tmp_path / "missing")


def test_a_copy_is_matched_to_its_lesson_and_its_checks_restored():
    lesson = LESSONS["04"]
    nb = submission(lesson, "empty")
    found = release.exercises(nb)
    nb.cells[found[0].check].source = "pass  # the student emptied the check"
    assert release.lesson_of(nb) == lesson
    restored = release.restore_checks(nb, release.read(lesson))
    assert "check_bpd(bits_per_dim_by_hand" in restored.cells[found[0].check].source
    assert "HIDDEN TESTS" in restored.cells[found[0].check].source
    with pytest.raises(ValueError, match="no exercise of the course"):
        release.lesson_of(nbformat.v4.new_notebook())
