"""The built emotion set on disk: an arrays file and the manifest that vouches for it.

``manifest.json`` records the size and sha256 of ``emotion_set.npz`` and is written after it,
so a build killed between the two writes leaves arrays that their manifest does not vouch for:
loading checks the checksum and refuses (or rebuilds) rather than serve them. Writers hold a
lock on the folder and remove the temporary files a killed build left behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from bplf.data.errors import BuiltSetError, DatasetError
from bplf.data.images import SIZE
from bplf.data.labels import EMOTIONS
from bplf.utils import atomic_write, remove_stale_temps

ARRAYS_FILE = "emotion_set.npz"
MANIFEST_FILE = "manifest.json"
FIELDS = ("images", "labels", "source", "subject", "split")
#: Where file locks are missing (Windows), temporary files older than this count as stale.
STALE_SECONDS = 3600
_REBUILD = "rebuild it with bplf.build_emotion_set(force=True) (or notebook 01)"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextmanager
def _locked(out: Path) -> Iterator[bool]:
    """Hold an exclusive lock on the folder ``out`` (True), or do nothing where there is no
    ``fcntl`` (False)."""
    try:
        import fcntl
    except ImportError:
        yield False
        return
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield True
    finally:
        os.close(fd)


def write(out: Path, arrays: dict[str, np.ndarray], manifest: dict) -> dict:
    """Write the arrays, then the manifest with their checksum; returns the manifest written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with _locked(out) as locked:
            # unlocked, a temporary may belong to a build running now: only old ones are stale
            removed = remove_stale_temps(out, (ARRAYS_FILE, MANIFEST_FILE),
                                         0.0 if locked else STALE_SECONDS)
            if removed:
                warnings.warn(f"{out}: removed {len(removed)} temporary file(s) left by an "
                              f"interrupted build ({', '.join(p.name for p in removed)})",
                              stacklevel=3)
            digest: dict = {}

            def write_arrays(tmp: Path) -> None:
                with open(tmp, "wb") as f:
                    np.savez(f, **arrays)
                data = tmp.read_bytes()
                digest.update(bytes=len(data), sha256=_sha256(data))

            atomic_write(out / ARRAYS_FILE, write_arrays)
            manifest = {**manifest, "arrays": {"file": ARRAYS_FILE, **digest}}
            text = json.dumps(manifest, indent=1)
            atomic_write(out / MANIFEST_FILE, lambda tmp: tmp.write_text(text))
    except OSError as err:
        what = err.strerror or str(err)
        raise DatasetError(f"{out}: cannot write the emotion set there ({what}); make the folder "
                           "writable (or free some space), or set BPLF_DATA_DIR to a writable "
                           "folder") from None
    return manifest


def read_manifest(out: Path) -> dict:
    """The manifest in ``out``. ``FileNotFoundError`` when the set is not built,
    ``BuiltSetError`` when the file is unreadable or not a manifest."""
    path = out / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: the emotion set is not built; run "
                                "bplf.build_emotion_set() or notebook 01") from None
    except OSError as err:
        raise BuiltSetError(f"{path}: cannot be read ({err.strerror or err}); make it readable, "
                            f"or {_REBUILD}") from None
    except ValueError as err:  # not JSON, or not text
        raise BuiltSetError(f"{path}: corrupt ({err}); {_REBUILD}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("fingerprint"), str):
        raise BuiltSetError(f"{path}: not an emotion-set manifest; {_REBUILD}")
    return manifest


def _read_arrays_file(out: Path) -> bytes:
    path = out / ARRAYS_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise BuiltSetError(f"{path}: missing ({MANIFEST_FILE} is there); {_REBUILD}") from None
    except OSError as err:
        raise BuiltSetError(f"{path}: cannot be read ({err.strerror or err}); make it readable, "
                            f"or {_REBUILD}") from None


def _check_digest(out: Path, data: bytes, manifest: dict) -> bool:
    """True when the manifest vouches for ``data``; False for a set built before checksums."""
    expected = manifest.get("arrays")
    if not isinstance(expected, dict):
        return False
    if expected.get("bytes") != len(data) or expected.get("sha256") != _sha256(data):
        raise BuiltSetError(f"{out / ARRAYS_FILE}: does not match {MANIFEST_FILE} (its checksum "
                            "differs: a build was interrupted between the two files, or a file "
                            f"was changed or truncated); {_REBUILD}")
    return True


def verify(out: Path, manifest: dict) -> bool:
    """Check the arrays file against ``manifest``: True when it matches, False when the set
    predates checksums; raises ``BuiltSetError`` when it is missing or does not match."""
    return _check_digest(out, _read_arrays_file(out), manifest)


def load(out: Path, manifest: dict) -> dict[str, np.ndarray]:
    """The arrays in ``out``, checked against ``manifest`` and for shape and type."""
    path = out / ARRAYS_FILE
    data = _read_arrays_file(out)
    if not _check_digest(out, data, manifest):
        warnings.warn(f"{path}: built by an older bplf, with no checksum in {MANIFEST_FILE}, so "
                      f"it cannot be verified against it; {_REBUILD}", stacklevel=3)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in FIELDS}
    except Exception as err:  # numpy and zipfile raise many types for a damaged file
        raise BuiltSetError(f"{path}: corrupt or truncated ({type(err).__name__}: {err}); "
                            f"{_REBUILD}") from None
    n = len(arrays["labels"])
    problems = []
    if arrays["images"].shape != (n, SIZE, SIZE) or arrays["images"].dtype != np.uint8:
        problems.append(f"images are {arrays['images'].dtype} {arrays['images'].shape}, "
                        f"expected uint8 ({n}, {SIZE}, {SIZE})")
    labels = arrays["labels"]
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or (
            n and not 0 <= labels.min() <= labels.max() < len(EMOTIONS)):
        problems.append("labels are not integers in 0..6")
    problems += [f"{k} has shape {arrays[k].shape}, expected ({n},)" for k in FIELDS[2:]
                 if arrays[k].shape != (n,)]
    if manifest.get("total", n) != n:
        problems.append(f"{n} faces, but {MANIFEST_FILE} says {manifest['total']}")
    if problems:
        raise BuiltSetError(f"{path}: {'; '.join(problems)}; {_REBUILD}")
    return arrays
