"""Small helpers shared across the package: progress bars, atomic writes, checked loading."""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import time
from collections.abc import Callable, Collection, Iterable
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path

import torch
from tqdm.auto import tqdm

from bplf.settings import progress_enabled


class CheckpointError(ValueError):
    """A checkpoint or config file that cannot be loaded; the message names the file, the
    problem and what to do about it."""


def progress(iterable: Iterable | None = None, **kwargs) -> tqdm:
    """A ``tqdm.auto`` progress bar, quiet under CI (see ``bplf.settings.progress_enabled``)."""
    kwargs.setdefault("disable", not progress_enabled())
    kwargs.setdefault("leave", False)
    return tqdm(iterable, **kwargs)


def _fsync(path: Path | str, folder: bool = False) -> None:
    """Flush the file (or the ``folder``) ``path`` to the disk."""
    fd = os.open(path, os.O_RDONLY if folder else os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: Path | str):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary is flushed to the disk before the rename, so an error that only shows there
    (a full disk with delayed allocation, a network file system) also keeps the old ``path``.
    Readers never see a half-written file, and a failure leaves nothing behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    try:
        _fsync(path.parent, folder=True)  # the rename itself, best effort (not every OS can)
    except OSError:
        pass


def atomic_write(path: Path | str, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        write(tmp)


def atomic_save(obj: object, path: Path | str) -> None:
    """``torch.save(obj, path)`` through ``atomic_write``: a failed save keeps the old file."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def remove_stale_temps(folder: Path | str, names: Iterable[str],
                       older_than: float = 0.0) -> list[Path]:
    """Delete the temporaries ``atomic_path`` left in ``folder`` for ``names`` when a process
    was killed mid-write (nothing else can remove them), if at least ``older_than`` seconds
    old; returns what was deleted."""
    now = time.time()
    stale = [p for name in names for p in Path(folder).glob(f".{name}.*.tmp")
             if now - p.stat().st_mtime >= older_than]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until all of ``data`` is written."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def append_line(path: Path | str, line: str) -> None:
    """Append ``line`` and a newline to ``path`` in one write. A write that fails (a full disk)
    is cut back off, so the file never ends in a torn line."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        start = os.fstat(fd).st_size
        try:
            _write_all(fd, (line.rstrip("\n") + "\n").encode())
        except BaseException:
            os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)


def read_jsonl(path: Path | str) -> list[dict]:
    """The rows of a JSON-lines file. A last line without its newline that does not parse is a
    write cut short (a killed process) and is dropped; any other bad line raises
    ``CheckpointError``."""
    path = Path(path)
    text = path.read_text()
    lines = text.split("\n")
    rows = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            if i == len(lines):  # no newline after it: torn by an interrupted append
                break
            raise CheckpointError(f"{path}: line {i} is not JSON ({err}); delete that line "
                                  "(or the file) to go on") from None
    return rows


def _short(err: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, cut to ``limit`` characters."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_torch(file: Path | str, kind: str, fix: str) -> dict:
    """``torch.load(file, weights_only=True)``: a dict whose ``model`` entry maps names to
    tensors. Anything else raises ``CheckpointError`` "FILE: not KIND: PROBLEM; FIX"."""
    file = Path(file)

    def error(problem: str) -> CheckpointError:
        return CheckpointError(f"{file}: not {kind}: {problem}; {fix}")

    try:
        ckpt = torch.load(file, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"{file}: no such checkpoint; {fix}") from None
    except (PermissionError, IsADirectoryError):
        raise  # unreadable: not a problem of its content
    except Exception as err:
        refused = isinstance(err, pickle.UnpicklingError)  # its text advises weights_only=False
        if refused and "GLOBAL" in str(err):  # a class or function: code, not weights
            raise error("it holds objects other than tensors and numbers, which a "
                        "weights_only load refuses") from None
        with open(file, "rb") as f:
            head = f.read(4)
        if not head:
            raise error("the file is empty (a write cut short?)") from None
        if head.startswith((b"PK\x03\x04", b"\x80")):  # torch's zip format, or a pickle
            detail = "" if refused else f" ({_short(err, 120)})"
            raise error(f"the file is truncated or corrupt, a write cut short?{detail}") from None
        raise error("it is not a file written by torch.save") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        raise error("it holds no model weights (no 'model' state dict)")
    odd = [k for k, v in ckpt["model"].items() if not isinstance(v, torch.Tensor)]
    if odd:
        raise error(f"its model weights hold non-tensors at {odd[:3]}")
    return ckpt


def load_state(module: torch.nn.Module, state: dict, file: Path | str, config: Path | str,
               fix: str) -> None:
    """``module.load_state_dict(state)`` (strict); weights whose names or shapes do not fit the
    module built from ``config`` raise ``CheckpointError`` naming both files."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError) as err:
        raise CheckpointError(f"{file}: weights do not match {config} ({_short(err)}); "
                              f"{fix}") from None


def read_json_object(file: Path | str, fix: str) -> dict:
    """The JSON object in ``file``; a file that is not one raises ``CheckpointError``."""
    file = Path(file)
    text = file.read_text()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        problem = "the file is empty" if not text.strip() else f"not valid JSON ({err})"
        raise CheckpointError(f"{file}: {problem}, a write cut short or a bad edit?; "
                              f"{fix}") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{file}: a JSON {type(value).__name__}, not an object; {fix}")
    return value


def config_from_dict(cls: type, d: object, file: Path | str, required: Collection[str],
                     fix: str, section: str | None = None):
    """``cls.from_dict(d)`` for the dict ``d`` read from ``file`` (its ``section``), checked
    first: unknown fields, missing ``required`` fields or bad values raise ``CheckpointError``
    naming the file. Fields not in ``required`` may be missing (they were added later, and
    their defaults reproduce what files written before them meant)."""
    where = f"{file}" + (f" [{section!r}]" if section else "")
    if not isinstance(d, dict):
        raise CheckpointError(f"{where}: expected a JSON object of {cls.__name__} fields, got "
                              f"{type(d).__name__}; {fix}")
    try:
        check_fields(cls, d)
    except ValueError as err:
        raise CheckpointError(
            f"{where}: {err}; it was written by another version of bplf or edited by hand: "
            f"remove them, or use the version that wrote it; {fix}") from None
    missing = [name for name in required if name not in d]
    if missing:
        raise CheckpointError(
            f"{where}: missing {cls.__name__} fields {missing}; add them with the values the "
            f"weights were trained with; {fix}")
    try:
        return cls.from_dict(d)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{where}: invalid {cls.__name__} ({_short(err)}); {fix}") from None


def check_fields(cls: type, names: Iterable[str]) -> None:
    """Refuse names that are not fields of the dataclass ``cls``, listing the valid ones."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(names) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {unknown}; valid: {sorted(known)}")
