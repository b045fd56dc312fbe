"""Grading helpers for the course's exercises: checks that say what is wrong, not just that it is.

Every exercise of the notebooks is a function or class a student completes; its check cell calls
one ``check_*`` function of its lesson's module (``lesson01`` ... ``lesson06``). A check returns
quietly (printing one line) when the answer is right and raises
:class:`~bplf.course.exercises.checking.ExerciseError`, an ``AssertionError``, with a message that
names the likely mistake and how to fix it. An unsolved exercise (nbgrader's stub raises
``NotImplementedError``) fails with "not written yet".

The checks build their own small inputs (a tiny random BPLF of 8x8 images, a few faces), so they
run in a second and do not depend on the rest of the notebook.
"""

from collections.abc import Callable

from bplf.course.exercises import lesson01, lesson02, lesson03, lesson04, lesson05, lesson06

#: Every exercise check, by name (for the tests and the guide).
CHECKS: dict[str, Callable] = {
    "check_label_reader": lesson01.check_label_reader,
    "check_subject_split": lesson01.check_subject_split,
    "check_logdet": lesson02.check_logdet,
    "check_flow_log_prob": lesson02.check_flow_log_prob,
    "check_lu_logdet": lesson03.check_lu_logdet,
    "check_invertible_module": lesson03.check_invertible_module,
    "check_bpd": lesson04.check_bpd,
    "check_train_step": lesson04.check_train_step,
    "check_interpolation": lesson05.check_interpolation,
    "check_prior_edit": lesson05.check_prior_edit,
    "check_compare": lesson06.check_compare,
    "check_verdict": lesson06.check_verdict,
}

__all__ = ["CHECKS"]
