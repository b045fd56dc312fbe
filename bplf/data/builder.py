"""Build the merged emotion set from whatever raw datasets the user placed in the raw folder.

Output (in ``BPLF_DATA_DIR``): ``emotion_set.npz`` (images, labels, source, subject, split) and
``manifest.json`` (counts, exclusions, skipped files, duplicates, input checksums, and the
checksum of the arrays file; see ``bplf.data.store``). Both are written atomically; a second
build with the same inputs does nothing unless forced.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from bplf.data import ckplus, fer2013, folder, jaffe, store, synthetic
from bplf.data.archive import ARCHIVE_SUFFIXES, RawTree, is_archive, is_doc, printable, unreadable
from bplf.data.dataset import SPLITS, EmotionSet
from bplf.data.errors import BuiltSetError, DatasetError
from bplf.data.labels import EMOTIONS
from bplf.data.source import SourceData
from bplf.data.store import ARRAYS_FILE, MANIFEST_FILE
from bplf.settings import data_dir, raw_dir

#: 2: the manifest holds the arrays' checksum, and readers list every file they do not use.
BUILDER_VERSION = 2
#: Fractions of subjects held out for val and test in subject-split sources (CK+, JAFFE).
SUBJECT_SPLIT = {"val": 0.15, "test": 0.15}
#: The canonical order of sources; it also decides which copy of a duplicate is kept.
SOURCE_ORDER = ("fer2013", "ckplus", "jaffe")


def find_sources(raw: Path) -> list[tuple[str, str, RawTree, str | None]]:
    """Detect each dataset in ``raw``: (source name, kind, tree, CSV member) per input.

    Each zip/tar archive, CSV file or folder directly inside ``raw`` is one input; anything
    else there is ignored with a warning.
    """
    found, ignored = _scan(raw)
    for entry in ignored:
        warnings.warn(entry["reason"], stacklevel=2)
    return found


def _scan(raw: Path) -> tuple[list[tuple[str, str, RawTree, str | None]], list[dict]]:
    """The inputs found in ``raw``, and the entries ignored there with why ({"file", "reason"})."""
    if raw.exists() and not raw.is_dir():
        raise DatasetError(f"{raw}: is a file, not a folder; set BPLF_RAW_DIR to the folder that "
                           "holds the dataset archives (see data/README.md)")
    if not raw.is_dir():
        return [], []
    try:
        entries = sorted(raw.iterdir())
    except OSError as err:
        raise unreadable(raw, err) from None
    found, ignored = [], []
    for path in entries:
        if path.name.startswith(".") or is_doc(path.name):
            continue
        where = printable(str(path))
        if path.is_symlink() and not path.exists():
            ignored.append({"file": where, "reason": f"{where}: ignored (a dangling symbolic "
                                                     f"link, to {printable(os.readlink(path))})"})
            continue
        if not (path.is_dir() or is_archive(path) or path.name.lower().endswith(".csv")):
            ignored.append({"file": where, "reason": f"{where}: ignored (not a zip/tar archive, "
                                                     "CSV or folder)"})
            continue
        tree = RawTree(path)
        if ckplus.looks_like(tree):
            found.append(("ckplus", "ckplus", tree, None))
        elif jaffe.looks_like(tree):
            found.append(("jaffe", "jaffe", tree, None))
        elif fer2013.looks_like_folders(tree):
            found.append(("fer2013", "fer2013-folders", tree, None))
        elif csvs := fer2013.csv_members(tree):
            found.append(("fer2013", "fer2013-csv", tree, csvs[0]))
        elif folder.looks_like(tree):
            stem = path.name.split(".")[0]
            found.append((stem, "folder", tree, None))
        else:
            inner = [f for f in tree.files() if f.lower().endswith((*ARCHIVE_SUFFIXES, ".csv"))]
            hint = (f" It holds {', '.join(inner[:3])}: extract that into the raw folder."
                    if inner else "")
            raise DatasetError(
                f"{where}: not a recognised emotion dataset. Expected FER-2013 "
                "(train/<emotion>/*.jpg and test/<emotion>/*.jpg, or a CSV with header "
                "emotion,pixels,Usage), CK+48 (CK+48/<emotion>/S###_###_########.png), JAFFE "
                "(jaffe/XX.EEn.NNN.tiff) or an image folder (<emotion>/*.png|jpg); "
                f"see data/README.md.{hint}")
    names = Counter(name for name, *_ in found)
    for name, n in names.items():
        if n > 1:
            paths = [str(t.path) for nm, _, t, _ in found if nm == name]
            raise DatasetError(f"{name} was found {n} times ({', '.join(paths)}); keep one copy")
    return found, ignored


def _read(name: str, kind: str, tree: RawTree, member: str | None) -> SourceData:
    if kind == "fer2013-folders":
        return fer2013.read_folders(tree, name)
    if kind == "fer2013-csv":
        return fer2013.read_csv(tree, member, name)
    if kind == "ckplus":
        return ckplus.read(tree, name)
    if kind == "jaffe":
        return jaffe.read(tree, name)
    return folder.read(tree, name)


def split_by_subject(subjects: list[str], seed: int) -> dict[str, str]:
    """Assign whole subjects to val/test/train with a fixed seed (no subject in two splits)."""
    unique = sorted(set(subjects))
    order = np.random.default_rng(seed).permutation(len(unique))
    n_val = max(1, round(SUBJECT_SPLIT["val"] * len(unique))) if len(unique) >= 3 else 0
    n_test = max(1, round(SUBJECT_SPLIT["test"] * len(unique))) if len(unique) >= 3 else 0
    assign = {}
    for rank, i in enumerate(order):
        assign[unique[i]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return assign


def _fingerprint(inputs: list[dict], seed: int) -> str:
    blob = json.dumps({"builder": BUILDER_VERSION, "seed": seed, "inputs": inputs}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def build_emotion_set(raw: Path | str | None = None, out: Path | str | None = None,
                      force: bool = False, seed: int = 0) -> dict:
    """Build (or confirm up to date) the merged emotion set; returns its manifest.

    ``raw`` defaults to ``BPLF_RAW_DIR`` and ``out`` to ``BPLF_DATA_DIR``. With no dataset in
    ``raw`` a procedural synthetic set is built instead, with a warning, unless ``out`` already
    holds a set built from real data: that one is kept (a lost ``BPLF_RAW_DIR`` must not
    replace real faces by drawings), also with a warning; ``force`` rebuilds regardless.
    """
    raw = Path(raw) if raw is not None else raw_dir()
    out = Path(out) if out is not None else data_dir()
    start = time.perf_counter()
    found, ignored = _scan(raw)
    for entry in ignored:
        warnings.warn(entry["reason"], stacklevel=2)
    inputs = [{"source": n, "kind": k, "path": str(t.path), "member": m, "sha256": t.sha256()}
              for n, k, t, m in found]
    fingerprint = _fingerprint([{k: v for k, v in i.items() if k != "path"} for i in inputs], seed)
    if not force and (old := _current(out, raw, fingerprint, bool(found))) is not None:
        return old
    if found:
        sources = [_read(*f) for f in found]
    else:
        warnings.warn(
            f"NO RAW DATASET FOUND in {raw}: building the SYNTHETIC procedural emotion-face set "
            "instead. Notebooks and tests run on it, but its faces are drawings, not people. "
            "See data/README.md to add FER-2013, CK+ and JAFFE (or set BPLF_RAW_DIR).",
            stacklevel=2)
        sources = [synthetic.generate(seed=seed)]
    rank = {name: i for i, name in enumerate(SOURCE_ORDER)}
    sources.sort(key=lambda s: (rank.get(s.name, len(rank)), s.name))
    for src in sources:
        if not len(src):
            first = f"; the first: {src.skipped[0]['reason']}" if src.skipped else ""
            raise DatasetError(f"{src.origin}: no usable image was found ({len(src.skipped)} "
                               f"skipped, {sum(src.excluded.values())} excluded{first})")
        missing = [i for i, s in enumerate(src.splits) if not s]
        if missing:
            assign = split_by_subject([src.subjects[i] for i in missing], seed)
            for i in missing:
                src.splits[i] = assign[src.subjects[i]]

    images = np.stack([img for s in sources for img in s.images])
    labels = np.array([lab for s in sources for lab in s.labels], dtype=np.int64)
    source = np.array([s.name for s in sources for _ in s.images])
    subject = np.array([sub for s in sources for sub in s.subjects])
    split = np.array([sp for s in sources for sp in s.splits])
    keep, duplicates = deduplicate(images, labels, source, split)
    images, labels, source, subject, split = (
        a[keep] for a in (images, labels, source, subject, split))

    manifest = {
        "fingerprint": fingerprint,
        "builder_version": BUILDER_VERSION,
        "seed": seed,
        "synthetic": not found,
        "raw_dir": str(raw),
        "inputs": inputs,
        "emotions": list(EMOTIONS),
        "total": int(len(labels)),
        "counts": _counts(labels, source, split),
        "excluded": {s.name: dict(s.excluded) for s in sources if s.excluded},
        "skipped": {s.name: s.skipped for s in sources if s.skipped},
        "ignored": ignored,
        "duplicates": duplicates,
        "notes": {s.name: s.notes for s in sources if s.notes},
        "subject_split": {"fractions": SUBJECT_SPLIT, "seed": seed},
        "build_seconds": round(time.perf_counter() - start, 2),
    }
    arrays = {"images": images, "labels": labels, "source": source, "subject": subject,
              "split": split}
    return store.write(out, arrays, manifest)


def _current(out: Path, raw: Path, fingerprint: str, have_raw: bool) -> dict | None:
    """The manifest of the set in ``out`` when it can be kept as it is, else None (rebuild).

    A set whose arrays do not match their manifest is rebuilt with a warning; one built from
    real data is kept when no raw dataset is found (a lost ``BPLF_RAW_DIR`` must not replace
    real faces by drawings), unless it is damaged: then the user must choose.
    """
    if not (out / MANIFEST_FILE).exists() and not (out / ARRAYS_FILE).exists():
        return None
    try:
        old = store.read_manifest(out)
        store.verify(out, old)
    except (BuiltSetError, FileNotFoundError) as err:
        if not have_raw and _peek_synthetic(out) is not True:
            raise BuiltSetError(f"{err}. No raw dataset was found in {raw} to rebuild it from: "
                                "set BPLF_RAW_DIR to the folder of the archives, or pass "
                                "force=True to build the synthetic set") from None
        warnings.warn(f"{err}: rebuilding it", stacklevel=3)
        return None
    if old.get("fingerprint") == fingerprint:
        return old
    if not have_raw and old.get("synthetic") is False:
        warnings.warn(f"no raw dataset found in {raw}: keeping the emotion set in {out}, "
                      "built earlier from real data (force=True replaces it by the "
                      "synthetic set)", stacklevel=3)
        return old
    return None


def _peek_synthetic(out: Path) -> bool | None:
    """Whether a (possibly damaged) set in ``out`` says it is synthetic; None if unknown."""
    try:
        return json.loads((out / MANIFEST_FILE).read_bytes()).get("synthetic")
    except (OSError, ValueError, AttributeError):
        return None


def deduplicate(images: np.ndarray, labels: np.ndarray, source: np.ndarray,
                split: np.ndarray) -> tuple[np.ndarray, dict]:
    """Indices to keep after removing exact pixel duplicates, and a summary of what went.

    Of a group of identical images the one kept is in the most held-out split (test, then val,
    then train), so evaluation sets stay whole and no test face is also trained on; ties go
    to the earlier source and position.
    """
    split_rank = np.array([{"test": 0, "val": 1, "train": 2}[s] for s in split])
    order = np.lexsort((np.arange(len(labels)), split_rank))
    seen: dict[bytes, int] = {}
    keep = np.ones(len(labels), dtype=bool)
    removed, cross, conflicts, cross_split = Counter(), 0, 0, 0
    for i in order:
        key = hashlib.sha1(images[i].tobytes()).digest()
        j = seen.setdefault(key, i)
        if j == i:
            continue
        keep[i] = False
        removed[str(source[i])] += 1
        cross += source[i] != source[j]
        cross_split += split[i] != split[j]
        conflicts += labels[i] != labels[j]
    summary = {"removed": int(sum(removed.values())), "removed_by_source": dict(removed),
               "across_sources": int(cross), "across_splits": int(cross_split),
               "with_different_labels": int(conflicts)}
    return np.flatnonzero(keep), summary


def _counts(labels: np.ndarray, source: np.ndarray, split: np.ndarray) -> dict:
    counts: dict = {}
    for src in sorted(set(source)):
        counts[src] = {}
        for sp in SPLITS:
            m = (source == src) & (split == sp)
            counts[src][sp] = {e: int((labels[m] == i).sum()) for i, e in enumerate(EMOTIONS)}
    return counts


def load_emotion_set(raw: Path | str | None = None, out: Path | str | None = None,
                     build: bool = True) -> EmotionSet:
    """Load the built emotion set, building it first if it is missing or out of date.

    With ``build=False`` the files on disk are loaded as they are (no raw data needed).
    """
    out = Path(out) if out is not None else data_dir()
    manifest = build_emotion_set(raw, out) if build else store.read_manifest(out)
    arrays = store.load(out, manifest)
    return EmotionSet(**arrays, manifest=manifest)
