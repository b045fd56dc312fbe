"""Build the merged emotion set from whatever raw datasets the user placed in the raw folder.

Output (in ``BPLF_DATA_DIR``): ``emotion_set.npz`` (images, labels, source, subject, split) and
``manifest.json`` (counts, exclusions, skipped files, duplicates, input checksums). Both are
written atomically; a second build with the same inputs does nothing unless forced.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from bplf.data import ckplus, fer2013, folder, jaffe, synthetic
from bplf.data.archive import RawTree, is_archive
from bplf.data.dataset import SPLITS, EmotionSet
from bplf.data.errors import DatasetError
from bplf.data.labels import EMOTIONS
from bplf.data.source import SourceData
from bplf.settings import data_dir, raw_dir
from bplf.utils import atomic_write

BUILDER_VERSION = 1
ARRAYS_FILE = "emotion_set.npz"
MANIFEST_FILE = "manifest.json"
#: Fractions of subjects held out for val and test in subject-split sources (CK+, JAFFE).
SUBJECT_SPLIT = {"val": 0.15, "test": 0.15}
#: The canonical order of sources; it also decides which copy of a duplicate is kept.
SOURCE_ORDER = ("fer2013", "ckplus", "jaffe")
_IGNORED_SUFFIXES = (".md", ".txt", ".pdf", ".html", ".gitkeep")


def find_sources(raw: Path) -> list[tuple[str, str, RawTree, str | None]]:
    """Detect each dataset in ``raw``: (source name, kind, tree, CSV member) per input.

    Each zip/tar archive, CSV file or folder directly inside ``raw`` is one input.
    """
    if not raw.is_dir():
        return []
    found = []
    for path in sorted(raw.iterdir()):
        if path.name.startswith(".") or path.name.lower().endswith(_IGNORED_SUFFIXES):
            continue
        if not (path.is_dir() or is_archive(path) or path.name.lower().endswith(".csv")):
            warnings.warn(f"{path}: ignored (not a zip/tar archive, CSV or folder)", stacklevel=2)
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
            raise DatasetError(
                f"{path}: not a recognised emotion dataset. Expected FER-2013 "
                "(train/<emotion>/*.jpg and test/<emotion>/*.jpg, or a CSV with header "
                "emotion,pixels,Usage), CK+48 (CK+48/<emotion>/S###_###_########.png), JAFFE "
                "(jaffe/XX.EEn.NNN.tiff) or an image folder (<emotion>/*.png|jpg); "
                "see data/README.md")
    names = Counter(name for name, *_ in found)
    for name, n in names.items():
        if n > 1:
            paths = [str(t.path) for nm, _, t, _ in found if nm == name]
            raise DatasetError(f"{name} was found {n} times ({', '.join(paths)}); keep one copy")
    return found


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
    found = find_sources(raw)
    inputs = [{"source": n, "kind": k, "path": str(t.path), "member": m, "sha256": t.sha256()}
              for n, k, t, m in found]
    fingerprint = _fingerprint([{k: v for k, v in i.items() if k != "path"} for i in inputs], seed)
    manifest_path, arrays_path = out / MANIFEST_FILE, out / ARRAYS_FILE
    if not force and manifest_path.exists() and arrays_path.exists():
        try:
            old = json.loads(manifest_path.read_text())
        except json.JSONDecodeError:
            old = {}
        if old.get("fingerprint") == fingerprint:
            return old
        if not found and old.get("synthetic") is False:
            warnings.warn(f"no raw dataset found in {raw}: keeping the emotion set in {out}, "
                          "built earlier from real data (force=True replaces it by the "
                          "synthetic set)", stacklevel=2)
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
            raise DatasetError(f"{src.origin}: no usable image was found ({len(src.skipped)} "
                               f"skipped, {sum(src.excluded.values())} excluded)")
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

    def write_arrays(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, images=images, labels=labels, source=source, subject=subject, split=split)

    atomic_write(arrays_path, write_arrays)
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
        "duplicates": duplicates,
        "notes": {s.name: s.notes for s in sources if s.notes},
        "subject_split": {"fractions": SUBJECT_SPLIT, "seed": seed},
        "build_seconds": round(time.perf_counter() - start, 2),
    }
    atomic_write(manifest_path, lambda tmp: tmp.write_text(json.dumps(manifest, indent=1)))
    return manifest


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
    if build:
        manifest = build_emotion_set(raw, out)
    else:
        try:
            manifest = json.loads((out / MANIFEST_FILE).read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{out / MANIFEST_FILE}: the emotion set is not built; "
                                    "run bplf.build_emotion_set() or notebook 01") from None
    with np.load(out / ARRAYS_FILE, allow_pickle=False) as z:
        return EmotionSet(z["images"], z["labels"], z["source"], z["subject"], z["split"], manifest)
