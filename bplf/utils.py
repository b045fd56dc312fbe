"""Small helpers shared across the package."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path

from tqdm.auto import tqdm

from bplf.settings import progress_enabled


def progress(iterable: Iterable | None = None, **kwargs) -> tqdm:
    """A ``tqdm.auto`` progress bar, quiet under CI (see ``bplf.settings.progress_enabled``)."""
    kwargs.setdefault("disable", not progress_enabled())
    kwargs.setdefault("leave", False)
    return tqdm(iterable, **kwargs)


@contextmanager
def atomic_path(path: Path | str):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Readers never see a half-written file, and a failure leaves nothing behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write(path: Path | str, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        write(tmp)


def check_fields(cls: type, names: Iterable[str]) -> None:
    """Refuse names that are not fields of the dataclass ``cls``, listing the valid ones."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(names) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {unknown}; valid: {sorted(known)}")
