"""The checks of notebook 01's exercises: a reader for a new label scheme (RAF-DB's), and a
split of faces by person."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bplf.course.exercises.checking import _call, _fail, _grading, _ok
from bplf.data import EMOTIONS

#: RAF-DB's basic-emotion codes (``list_patition_label.txt``): 1..7, in its own order.
RAFDB_CODES: dict[int, str] = {1: "surprise", 2: "fear", 3: "disgust", 4: "happy", 5: "sad",
                               6: "angry", 7: "neutral"}


def _raf_reference(text: str) -> list[tuple[str, str, int]]:
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        name, code = line.split()
        rows.append((name, name.split("_")[0], EMOTIONS.index(RAFDB_CODES[int(code)])))
    return rows


RAFDB_SAMPLE = ("train_00001.jpg 5\ntrain_00002.jpg 1\n  train_00003.jpg 4 \n\n"
                "train_00004.jpg 7\ntest_0001.jpg 2\ntest_0002.jpg 6\ntest_0003.jpg 3\n"
                "test_0004.jpg 4\n")


def check_label_reader(fn: Callable[[str], list], text: str = RAFDB_SAMPLE) -> None:
    """``fn(text)`` reads RAF-DB's label list into ``(file name, split, emotion index)`` rows."""
    with _grading("your reader"):
        ref = _raf_reference(text)
        got = _call(fn, text)
        if not isinstance(got, list):
            _fail(f"return a list of (file name, split, emotion index) tuples, got "
                  f"{type(got).__name__}")
        if len(got) != len(ref):
            _fail(f"{len(got)} rows for {len(ref)} labelled files: skip blank lines, and read "
                  "one row per non-blank line")
        for g, r in zip(got, ref, strict=True):
            if not (isinstance(g, tuple | list) and len(g) == 3):
                _fail(f"each row should be a (file name, split, emotion index) tuple, got {g!r}")
            name, split, label = g
            if name != r[0]:
                _fail(f"file name {name!r} should be {r[0]!r}: strip the whitespace around it")
            if split != r[1]:
                _fail(f"{r[0]}: split {split!r} should be {r[1]!r}, the file name's prefix "
                      "before the underscore")
            if isinstance(label, str):
                _fail(f"{r[0]}: the label should be an index into bplf.data.EMOTIONS (an int), "
                      f"not the name {label!r}: use EMOTIONS.index(name)")
            if label != r[2]:
                code = int(next(ln for ln in text.splitlines() if r[0] in ln).split()[1])
                if label == code or label == code - 1:
                    _fail(f"{r[0]} has RAF-DB code {code} ({RAFDB_CODES[code]}), you returned "
                          f"{label} ({EMOTIONS[label] if 0 <= label < 7 else '?'}): RAF-DB's "
                          "codes are in its own order, not FER-2013's; map each code to its "
                          "name first, then to our index")
                _fail(f"{r[0]} (code {code}) is {RAFDB_CODES[code]!r}, index {r[2]} in EMOTIONS; "
                      f"you returned {label}")
    _ok(f"{len(ref)} labels read, every code mapped to the right emotion")


def _split_reference(subjects: np.ndarray) -> dict[str, int]:
    people = len(set(subjects))
    n_val = n_test = round(0.15 * people)
    return {"train": people - n_val - n_test, "val": n_val, "test": n_test}


def check_subject_split(fn: Callable[..., np.ndarray]) -> None:
    """``fn(subjects, seed)`` splits faces 70/15/15 by person: no person in two splits."""
    with _grading("your split"):
        rng = np.random.default_rng(0)
        subjects = np.array([f"S{p:03d}" for p in rng.integers(0, 40, 400)])
        split = np.asarray(_call(fn, subjects, seed=0))
        if split.shape != subjects.shape:
            _fail(f"return one split name per face, shape {subjects.shape}; got {split.shape}")
        names = set(split.tolist())
        if not names <= {"train", "val", "test"}:
            _fail(f"splits should be 'train', 'val' and 'test', got {sorted(names)}")
        for person in np.unique(subjects):
            where = set(split[subjects == person].tolist())
            if len(where) > 1:
                _fail(f"person {person} has faces in {sorted(where)}: shuffle and split the "
                      "people (np.unique(subjects)), then give every face its person's split")
        people = {s: len(set(subjects[split == s])) for s in ("train", "val", "test")}
        want = _split_reference(subjects)
        if any(abs(people[s] - want[s]) > 1 for s in want):
            _fail(f"people per split {people}; 70/15/15 of {len(set(subjects))} people is about "
                  f"{want}: the fractions apply to people, not faces")
        again = np.asarray(_call(fn, subjects, seed=0))
        if not np.array_equal(split, again):
            _fail("two calls with the same seed gave different splits: draw the permutation "
                  "from np.random.default_rng(seed), not from global state")
        other = np.asarray(_call(fn, subjects, seed=1))
        if np.array_equal(split, other):
            _fail("seeds 0 and 1 gave the same split: the seed should choose the permutation")
    _ok(f"no person in two splits; people per split {people}")
