"""The exercises and the student release (bplf.course.release, nbgrader): the release holds no
solution, runs up to its first exercise, and every check fails on the stub and passes on the
solution, so autograding scores the instructor notebooks full marks and the release zero."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bplf.cli import main
from bplf.course import release

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))
SOLUTION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("release")
    main(["student", "--out", str(out)])
    return out


def test_every_notebook_has_graded_exercises():
    total = 0
    for path in NOTEBOOKS:
        nb = release.read(path)
        found = release.exercises(nb)
        assert len(found) >= 2, f"{path.name}: {len(found)} exercises"
        total += len(found)
        assert "exercise" in "".join(nb.cells[0].source).lower(), "the opening mentions them"
        for ex in found:
            solution, check = nb.cells[ex.solution], nb.cells[ex.check]
            assert "### BEGIN SOLUTION" in solution.source and ex.points > 0
            # the check comes from its lesson's module (bplf/course/exercises/lessonNN.py)
            assert f"from bplf.course.exercises.lesson{path.name[:2]} import check_" in check.source
            assert check.metadata.nbgrader["schema_version"] == 3
            intro = nb.cells[ex.solution - 1]
            assert intro.cell_type == "markdown" and "<summary>Hint</summary>" in intro.source
            assert f"({ex.points:g} points)" in intro.source and f"({ex.points:g} points)" in \
                check.source
    assert total >= 12


def test_release_holds_no_solution_hidden_test_or_output(released: Path):
    assert sorted(p.name for p in released.glob("*.ipynb")) == [p.name for p in NOTEBOOKS]
    for path in NOTEBOOKS:
        instructor = release.read(path)
        inside = {line.strip() for c in instructor.cells for m in SOLUTION.findall(c.source)
                  for line in m.splitlines() if line.strip() and not line.strip().startswith("#")}
        outside = {line.strip() for c in instructor.cells
                   for line in SOLUTION.sub("", c.source).splitlines()}
        student = release.read(released / path.name)
        text = "\n".join(c.source for c in student.cells)
        assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
        assert "HIDDEN TESTS" not in text
        shown = {line.strip() for c in student.cells for line in c.source.splitlines()}
        leaked = (inside & shown) - outside
        assert not leaked, f"{path.name}: solution lines in the release: {sorted(leaked)}"
        assert all(not c.get("outputs") and c.get("execution_count") is None
                   for c in student.cells if c.cell_type == "code")
        assert text.count("raise NotImplementedError()") >= len(release.exercises(student))
        assert student.metadata == instructor.metadata


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_checks_fail_on_the_stub_and_pass_on_the_solution(path: Path, monkeypatch):
    """One kernel per variant: the instructor's exercises (with the lesson's set-up cell), and
    the student's copy from the top to its first exercise, then its exercises."""
    monkeypatch.setenv("BPLF_QUICK", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("BPLF_PROGRESS", "0")
    instructor = release.read(path)
    found = release.exercises(instructor)

    graded = release.autograde(release.grading_notebook(instructor))
    assert not graded.errors(), f"a check fails on the solution: {graded.errors()}"
    assert graded.score == graded.max_score == sum(e.points for e in found)

    student = release.grading_notebook(release.student_version(instructor),
                                       upto_first_exercise=True)
    first = release.exercises(student)[0].solution
    graded = release.autograde(student)
    errors = dict(graded.errors())
    assert not [i for i in errors if i < first], f"the release fails before its first " \
        f"exercise: {[errors[i] for i in errors if i < first]}"
    for ex in release.exercises(student):
        assert "not written yet" in errors.get(ex.check, ""), (
            f"{ex.grade_id}: the check did not fail on the stub ({errors.get(ex.check)})")
    assert graded.score == 0 and graded.max_score == sum(e.points for e in found)
