"""One view over a raw dataset, whether the user placed it as a zip, a tar or a folder."""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path

from bplf.data.errors import DatasetError, ImageError

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
#: Documentation that may sit beside the images; never read, never reported.
DOC_SUFFIXES = (".md", ".txt", ".pdf", ".html", ".htm", ".rst", ".gitkeep")


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def is_doc(name: str) -> bool:
    return name.lower().endswith(DOC_SUFFIXES)


def unreadable(path: Path | str, err: OSError) -> DatasetError:
    """The error for an input that the operating system will not let us read."""
    what = err.strerror or str(err)
    fix = "make it readable (chmod u+r)" if isinstance(err, PermissionError) else "check it"
    fix += ", or move it out of the raw folder"
    return DatasetError(f"{printable(str(path))}: cannot be read ({what}); {fix}")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as err:
        raise unreadable(path, err) from None
    return h.hexdigest()


def printable(name: str) -> str:
    """A name as text: bytes that are not UTF-8 (surrogate-escaped) shown as ``\\xNN``."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def normalise(name: str) -> str | None:
    """A member name as a relative POSIX path, or None when it points outside the archive.

    Backslashes (archives made on Windows) become slashes; ``./`` and empty parts are dropped.
    """
    name = name.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    return "/".join(parts)


class RawTree:
    """The files of one raw input as relative POSIX paths, readable as bytes.

    A folder's paths include the folder's own name (``CK+48/happy/S010_006_00000013.png``), so
    an extracted folder and its zip look the same to the readers. Entries that cannot be
    listed as files (dangling links, links inside archives, members with ``..`` in their path,
    special files) are kept in ``problems`` as ``{"file", "reason"}``, for the manifest.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.name = self.path.name
        self.problems: list[dict] = []
        self._zip: zipfile.ZipFile | None = None
        self._tar: tarfile.TarFile | None = None
        self._members: dict[str, object] = {}  # listed name -> ZipInfo, TarInfo or Path
        if self.path.is_dir():
            self._list_folder()
        elif self.path.name.lower().endswith(".zip"):
            self._list_zip()
        elif self.path.name.lower().endswith((".tar", ".tar.gz", ".tgz")):
            self._list_tar()
        else:  # a single file, e.g. fer2013.csv
            self._members = {self.path.name: self.path}
        self._files = sorted(f for f in self._members if not _is_junk(f))
        if not self._files:
            raise DatasetError(f"{self.path}: is empty (no files inside)")

    def _problem(self, where: str, reason: str) -> None:
        self.problems.append({"file": where, "reason": f"{where}: {reason}"})

    def _list_folder(self) -> None:
        base, seen = self.path.parent, set()

        def refuse(err: OSError) -> None:
            raise unreadable(err.filename or self.path, err)

        for top, dirs, files in os.walk(self.path, onerror=refuse, followlinks=True):
            st = os.stat(top)
            if (st.st_dev, st.st_ino) in seen:  # a link back to a folder already read
                self._problem(printable(top), "a folder already read through another path (a "
                                              "symbolic link loop, or a second link to it); "
                                              "not read again")
                dirs.clear()
                continue
            seen.add((st.st_dev, st.st_ino))
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for f in sorted(f for f in files if not f.startswith(".")):
                p = Path(top) / f
                name, where = printable(p.relative_to(base).as_posix()), printable(str(p))
                if p.is_symlink() and not p.exists():
                    self._problem(where, f"dangling symbolic link (to "
                                         f"{printable(os.readlink(p))}); not read")
                elif not p.is_file():
                    self._problem(where, "not a regular file (a pipe, socket or device); "
                                         "not read")
                else:
                    self._members[name] = p

    def _list_zip(self) -> None:
        try:
            self._zip = zipfile.ZipFile(self.path)
            infos = self._zip.infolist()
        except UnicodeDecodeError:
            raise DatasetError(f"{self.path}: a member name is flagged as UTF-8 but is not "
                               "valid UTF-8; re-create the archive (or extract it into a "
                               "folder and place the folder in the raw folder)") from None
        except (OSError, zipfile.BadZipFile, EOFError, ValueError) as err:
            raise self._open_failed("zip", err) from None
        for info in infos:
            if info.is_dir():
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                self._problem(f"{self.path}:{info.filename}",
                              "symbolic link inside the archive; not followed")
            else:
                self._add_member(info.filename, info)

    def _list_tar(self) -> None:
        try:
            self._tar = tarfile.open(self.path)
            infos = self._tar.getmembers()
        except (OSError, tarfile.TarError, EOFError, zlib.error) as err:
            raise self._open_failed("tar", err) from None
        for info in infos:
            if info.isdir():
                continue
            where = f"{self.path}:{printable(info.name)}"
            if info.issym() or info.islnk():
                self._problem(where, f"link inside the archive (to {printable(info.linkname)}); "
                                     "not followed")
            elif not info.isfile():
                self._problem(where, "not a regular file (a device or pipe); not read")
            else:
                self._add_member(info.name, info)

    def _open_failed(self, kind: str, err: Exception) -> DatasetError:
        """The error for an archive that cannot be opened: unreadable, or not an archive."""
        if isinstance(err, OSError) and err.errno is not None:
            return unreadable(self.path, err)
        return DatasetError(f"{self.path}: not a readable {kind} archive ({err}); download it "
                            "again")

    def _add_member(self, raw_name: str, info: object) -> None:
        name = normalise(raw_name)
        if name is None:
            self._problem(f"{self.path}:{printable(raw_name)}",
                          "path leaves the archive (absolute, or with '..'); not read")
        elif name := printable(name):
            if name in self._members:
                self._problem(f"{self.path}:{name}",
                              "appears more than once in the archive; only the last copy is read")
            self._members[name] = info

    def files(self) -> list[str]:
        return self._files

    def size(self, name: str) -> int:
        """The size in bytes a member declares (a folder file's size on disk)."""
        member = self._members[name]
        if isinstance(member, zipfile.ZipInfo):
            return member.file_size
        if isinstance(member, tarfile.TarInfo):
            return member.size
        return member.stat().st_size

    def read(self, name: str, limit: int | None = None) -> bytes:
        """A member's bytes. Raises ``ImageError`` naming it for a damaged, encrypted or
        oversized member (one item: the readers skip it), ``DatasetError`` for an unreadable file.
        """
        where, member = self.where(name), self._members[name]
        if limit is not None and (size := self.size(name)) > limit:
            raise ImageError(f"{where}: {size / 2**20:.0f} MiB, too large for a face "
                             f"image (limit {limit / 2**20:.0f} MiB); not read")
        try:
            if isinstance(member, zipfile.ZipInfo):
                assert self._zip is not None
                return self._zip.read(member)
            if isinstance(member, tarfile.TarInfo):
                assert self._tar is not None
                f = self._tar.extractfile(member)
                assert f is not None
                return f.read()
            return member.read_bytes()
        except RuntimeError as err:  # zipfile: encrypted member
            raise ImageError(f"{where}: cannot be read from the archive ({err}); extract the "
                             "archive with its password and place the folder instead") from None
        except OSError as err:
            if isinstance(member, Path) or err.errno is not None:
                raise unreadable(where if isinstance(member, Path) else self.path, err) from None
            raise ImageError(f"{where}: damaged inside the archive ({err}); download the archive "
                             "again") from None
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, NotImplementedError,
                ValueError) as err:
            raise ImageError(f"{where}: damaged inside the archive ({type(err).__name__}: {err}); "
                             "download the archive again") from None

    def where(self, name: str) -> str:
        """A path a person can find: the archive and the member, or the file."""
        path = printable(str(self.path))
        if self._zip is not None or self._tar is not None:
            return f"{path}:{name}"
        if self.path.is_dir():
            return f"{printable(str(self.path.parent))}/{name}"
        return path

    def sha256(self) -> str:
        """sha256 of an archive file, or of the sorted (path, content hash) list of a folder
        (and of its problems, so that fixing a dangling link is noticed)."""
        if not self.path.is_dir():
            return file_sha256(self.path)
        h = hashlib.sha256()
        for name in self._files:
            h.update(name.encode() + b"\0" + file_sha256(self._members[name]).encode())
        for p in self.problems:
            h.update(p["reason"].encode() + b"\0")
        return h.hexdigest()


def _is_junk(name: str) -> bool:
    parts = name.split("/")
    return any(p.startswith(".") or p == "__MACOSX" for p in parts) or parts[-1] == "Thumbs.db"
