"""One view over a raw dataset, whether the user placed it as a zip, a tar or a folder."""

from __future__ import annotations

import hashlib
import tarfile
import zipfile
from pathlib import Path

from bplf.data.errors import DatasetError

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class RawTree:
    """The files of one raw input as relative POSIX paths, readable as bytes.

    A folder's paths include the folder's own name (``CK+48/happy/S010_006_00000013.png``), so
    an extracted folder and its zip look the same to the readers.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.name = self.path.name
        self._zip: zipfile.ZipFile | None = None
        self._tar: tarfile.TarFile | None = None
        self._tar_members: dict[str, tarfile.TarInfo] = {}
        if self.path.is_dir():
            base = self.path.parent
            self._files = sorted(
                p.relative_to(base).as_posix()
                for p in self.path.rglob("*")
                if p.is_file() and not p.name.startswith(".")
            )
        elif self.path.name.lower().endswith(".zip"):
            try:
                self._zip = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError) as err:
                raise DatasetError(f"{self.path}: not a readable zip archive ({err})") from None
            self._files = sorted(n for n in self._zip.namelist() if not n.endswith("/"))
        elif self.path.name.lower().endswith((".tar", ".tar.gz", ".tgz")):
            try:
                self._tar = tarfile.open(self.path)
                self._tar_members = {m.name: m for m in self._tar.getmembers() if m.isfile()}
            except (tarfile.TarError, OSError, EOFError) as err:
                raise DatasetError(f"{self.path}: not a readable tar archive ({err})") from None
            self._files = sorted(self._tar_members)
        else:  # a single file, e.g. fer2013.csv
            self._files = [self.path.name]
        self._files = [f for f in self._files if not _is_junk(f)]
        if not self._files:
            raise DatasetError(f"{self.path}: is empty (no files inside)")

    def files(self) -> list[str]:
        return self._files

    def read(self, name: str) -> bytes:
        try:
            if self._zip is not None:
                return self._zip.read(name)
            if self._tar is not None:
                f = self._tar.extractfile(self._tar_members[name])
                assert f is not None
                return f.read()
            if self.path.is_dir():
                return (self.path.parent / name).read_bytes()
            return self.path.read_bytes()
        except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as err:
            msg = f"{self.where(name)}: cannot be read from the archive ({err})"
            raise DatasetError(msg) from None

    def where(self, name: str) -> str:
        """A path a person can find: the archive and the member, or the file."""
        if self._zip is not None or self._tar is not None:
            return f"{self.path}:{name}"
        if self.path.is_dir():
            return str(self.path.parent / name)
        return str(self.path)

    def sha256(self) -> str:
        """sha256 of an archive file, or of the sorted (path, content hash) list of a folder."""
        if not self.path.is_dir():
            return file_sha256(self.path)
        h = hashlib.sha256()
        for name in self._files:
            h.update(name.encode() + b"\0" + file_sha256(self.path.parent / name).encode())
        return h.hexdigest()


def _is_junk(name: str) -> bool:
    parts = name.split("/")
    return any(p.startswith(".") or p == "__MACOSX" for p in parts) or parts[-1] == "Thumbs.db"
