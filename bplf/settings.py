"""Run-time settings read from the environment, in one place.

``BPLF_QUICK=1`` (set by the test command) shrinks data and training in the notebooks while
exercising the same code paths. ``BPLF_RAW_DIR`` and ``BPLF_DATA_DIR`` locate the raw
datasets and the built files; ``BPLF_RUNS_DIR`` the runs notebooks start (:func:`run_dir`: one
folder per kernel, so notebook runs, tests and gradings can share a checkout).
"""

from __future__ import annotations

import getpass
import os
import platform
import re
import shutil
import socket
import subprocess
import tempfile
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


def _writable_dir(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK | os.X_OK)


def runs_root() -> Path:
    """Where runs started from notebooks go: ``BPLF_RUNS_DIR`` when set, else ``runs/`` of the
    checkout, else (a read-only checkout) ``~/.cache/bplf/runs``, else the temporary folder."""
    if os.environ.get("BPLF_RUNS_DIR"):
        return Path(os.environ["BPLF_RUNS_DIR"]).expanduser()
    for root in (REPO_ROOT / "runs", Path.home() / ".cache" / "bplf" / "runs",
                 Path(tempfile.gettempdir()) / f"bplf-runs-{_safe(_user())}"):
        if _writable_dir(root):
            return root
    raise OSError(f"no writable folder for runs (tried {REPO_ROOT / 'runs'}, ~/.cache/bplf/runs "
                  f"and {tempfile.gettempdir()}): set BPLF_RUNS_DIR to one")


def _safe(text: str) -> str:
    return re.sub(r"[^\w.-]", "_", text)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container's uid without a passwd entry
        return str(os.getuid())


def run_dir(name: str) -> Path:
    """A fresh, empty folder for the run ``name`` that belongs to this process alone:
    ``runs_root()/name/<user>-<host>-<pid>``. Each kernel (a student's notebook, a test, a
    grading) gets its own, so any number can run on one checkout at once; running the notebook
    again in the same kernel starts the run afresh in the same folder."""
    if not name or Path(name).name != name:
        raise ValueError(f"run name {name!r}: expected a plain folder name such as '04_train'")
    path = runs_root() / name / _safe(f"{_user()}-{socket.gethostname()}-{os.getpid()}")
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def setup_cpu() -> None:
    """Flush denormals to zero: flow training ran 1.3x-4.6x faster on CPU with it."""
    torch.set_flush_denormal(True)


#: CPU feature flags of native bfloat16 arithmetic: x86 (Linux ``/proc/cpuinfo``) and Arm
_BF16_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}


def cpu_has_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes in bfloat16 natively (x86: AVX512-BF16 or AMX, e.g. Intel
    Cooper Lake, Sapphire Rapids and later, AMD Zen 4 and later; Arm: FEAT_BF16, e.g. Apple M2
    and later, Graviton 3). Without it, bf16 autocast emulates the arithmetic and is slower than
    float32. Unknown platforms answer False."""
    system = platform.system()
    try:
        if system == "Linux":
            with open(cpuinfo) as f:
                for line in f:
                    if line.split(":")[0].strip() in ("flags", "Features"):
                        return bool(_BF16_FLAGS & set(line.split(":", 1)[1].split()))
        elif system == "Darwin":
            out = subprocess.run(["sysctl", "-n", "hw.optional.arm.FEAT_BF16"],
                                 capture_output=True, text=True, timeout=5).stdout
            return out.strip() == "1"
    except (OSError, subprocess.SubprocessError):
        pass
    return False


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
