"""bplf.course.exercises.lesson01, notebook 01's checks: the RAF-DB label reader, the split by
person: a right answer passes, each recognised mistake gets its own message."""

from __future__ import annotations

import numpy as np
import pytest

from bplf.course.exercises.checking import ExerciseError
from bplf.course.exercises.lesson01 import RAFDB_CODES, check_label_reader, check_subject_split
from bplf.data import EMOTIONS


def read_raf(text, code_map=RAFDB_CODES, split_fn=lambda n: n.split("_")[0]):
    rows = []
    for line in text.splitlines():
        if line.strip():
            name, code = line.split()
            rows.append((name, split_fn(name), EMOTIONS.index(code_map[int(code)])))
    return rows


def test_label_reader():
    check_label_reader(read_raf)
    with pytest.raises(ExerciseError, match="own order, not FER-2013's"):
        # the codes read as FER-2013's order: code c -> index c - 1
        check_label_reader(lambda t: read_raf(t, code_map=dict(enumerate(EMOTIONS, 1))))
    with pytest.raises(ExerciseError, match="the file name's prefix"):
        check_label_reader(lambda t: read_raf(t, split_fn=lambda n: "train"))
    with pytest.raises(ExerciseError, match="skip blank lines"):
        check_label_reader(lambda t: read_raf(t)[:-1])
    with pytest.raises(ExerciseError, match="an index into bplf.data.EMOTIONS"):
        check_label_reader(lambda t: [(n, s, EMOTIONS[i]) for n, s, i in read_raf(t)])


def split_people(subjects, seed=0, by_face=False, rng_seed=None):
    if by_face:
        order = np.random.default_rng(seed).permutation(len(subjects))
        out = np.empty(len(subjects), dtype=object)
        n = round(0.15 * len(subjects))
        out[order[:n]], out[order[n:2 * n]], out[order[2 * n:]] = "val", "test", "train"
        return out.astype(str)
    people = np.unique(subjects)
    rng = np.random.default_rng(seed if rng_seed is None else rng_seed())
    order = rng.permutation(len(people))
    n = round(0.15 * len(people))
    of = {people[i]: "val" if r < n else "test" if r < 2 * n else "train"
          for r, i in enumerate(order)}
    return np.array([of[s] for s in subjects])


def test_subject_split():
    check_subject_split(split_people)
    with pytest.raises(ExerciseError, match="split the people"):
        check_subject_split(lambda s, seed=0: split_people(s, seed, by_face=True))
    counter = iter(range(100))
    with pytest.raises(ExerciseError, match="same seed gave different splits"):
        check_subject_split(lambda s, seed=0: split_people(s, seed,
                                                              rng_seed=lambda: next(counter)))
    with pytest.raises(ExerciseError, match="fractions apply to people"):
        check_subject_split(lambda s, seed=0: np.where(np.isin(s, np.unique(s)[:2]), "val",
                                                          "train"))
