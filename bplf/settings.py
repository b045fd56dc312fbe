"""Run-time settings read from the environment, in one place.

``BPLF_QUICK=1`` (set by the test command) shrinks data and training in the notebooks while
exercising the same code paths. ``BPLF_RAW_DIR`` and ``BPLF_DATA_DIR`` locate the raw
datasets and the built files.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

#: Repository root when the package is used from a checkout (editable install), else the cwd.
_PKG_PARENT = Path(__file__).resolve().parents[1]
REPO_ROOT = _PKG_PARENT if (_PKG_PARENT / "pyproject.toml").exists() else Path.cwd()


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def quick_mode() -> bool:
    """True when ``BPLF_QUICK`` is set: notebooks shrink data and training."""
    return _flag("BPLF_QUICK")


def pick(full, quick):
    """Return ``quick`` in quick mode, ``full`` otherwise (the one switch notebooks use)."""
    return quick if quick_mode() else full


def progress_enabled() -> bool:
    """Progress bars are shown unless running under CI or with ``BPLF_PROGRESS=0``."""
    if os.environ.get("BPLF_PROGRESS") is not None:
        return _flag("BPLF_PROGRESS")
    return not _flag("CI")


def raw_dir() -> Path:
    """Where user-supplied dataset archives live (``BPLF_RAW_DIR``, default ``data/raw``)."""
    return Path(os.environ.get("BPLF_RAW_DIR") or REPO_ROOT / "data" / "raw").expanduser()


def data_dir() -> Path:
    """Where built files are written (``BPLF_DATA_DIR``, default ``data/processed``)."""
    return Path(os.environ.get("BPLF_DATA_DIR") or REPO_ROOT / "data" / "processed").expanduser()


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def setup_cpu() -> None:
    """Flush denormals to zero: flow training ran 1.3x-4.6x faster on CPU with it."""
    torch.set_flush_denormal(True)


def set_tf32(enabled: bool) -> None:
    """Allow or forbid TF32 (10-bit mantissa) convolutions and matmuls on CUDA. Forbidden by
    default (at import): with TF32 an H100 inverted the flows to 1e-3 instead of 1e-6, so
    samples and edits would not be exact inverses. ``TrainConfig.tf32`` allows it for speed."""
    torch.backends.cudnn.allow_tf32 = enabled
    torch.backends.cuda.matmul.allow_tf32 = enabled


def display_path(path: Path | str) -> str:
    """A path as a reader should see it: relative to the repo, or to ``$BPLF_RAW_DIR``.

    Notebook outputs are committed, so they never show where this machine keeps its files.
    """
    path = Path(path).resolve()
    for base, label in ((raw_dir().resolve(), "$BPLF_RAW_DIR"), (REPO_ROOT.resolve(), ".")):
        if path.is_relative_to(base):
            rel = path.relative_to(base).as_posix()
            return label if rel == "." else f"{label}/{rel}"
    return path.name
