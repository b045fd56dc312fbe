"""nbgrader's settings for this course: the one place the grading settings live.

nbgrader's own apps (``nbgrader autograde``, ``nbgrader validate``, the JupyterLab extension)
read this file when started from the repository root; ``python -m bplf grade`` reads it too
(``bplf.course.release.grading_config``), so both routes grade a submission the same way.
"""

c = get_config()  # noqa: F821 (traitlets provides it)

# A graded kernel runs the lesson in quick mode (BPLF_QUICK=1: notebook 04 trains for about a
# minute instead of ten), with one torch thread (gradings run side by side) and no progress
# bars. The kernel sets them itself, before the first cell, so the teacher's shell is unchanged.
GRADING_ENV = {"BPLF_QUICK": "1", "BPLF_PROGRESS": "0", "OMP_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1"}
c.Execute.extra_arguments = [
    "--HistoryManager.hist_file=:memory:",  # nbgrader's default for python kernels
    f"--IPKernelApp.exec_lines=import os; os.environ.update({GRADING_ENV!r})",
]

# Seconds one cell may run. nbgrader's default, 30, interrupts lesson cells (training, the
# evaluations); the slowest quick-mode cell, notebook 04's training, takes 1-2 minutes on a
# 2-core CPU, longer when several gradings share it: 20 minutes leaves room for a slow laptop.
c.Execute.timeout = 1200
