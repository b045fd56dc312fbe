"""Keep faces from the licensed datasets out of committed notebooks.

FER-2013, CK+ and JAFFE forbid redistributing their images. A notebook can hold an image in
cell outputs, in markdown attachments, in saved widget state (``metadata.widgets``: an
``Output`` widget keeps what it rendered) and anywhere else in notebook or cell metadata.

- ``strip(nb)`` removes what may show a dataset face: the outputs of cells tagged
  ``dataset-faces``, saved widget state, widget views, attachments and any image in metadata.
- ``find_images(nb)`` lists every embedded image (and widget state or view) with its location;
  ``leaks(nb)`` keeps those that are not figure outputs of untagged cells.

Command line (used by ``make notebooks`` and the git pre-commit hook in ``.githooks/``)::

    python -m bplf strip-notebooks FILES...          # strip in place
    python -m bplf strip-notebooks --check FILES...  # list leaks, exit 1 if any
    python -m bplf strip-notebooks --staged          # strip the staged notebooks in git's index
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bplf.utils import atomic_write

FACE_TAG = "dataset-faces"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
#: Output mimetypes whose text can carry an inline ``data:image/...`` URI.
TEXT_MIMES = ("text/html", "text/markdown", "text/latex", "image/svg+xml")
DATA_URI = re.compile(r"data:image/[\w.+-]+;base64,", re.IGNORECASE)
_B64 = re.compile(r"[A-Za-z0-9+/=\s]{64,}")
#: File signatures of raster images, matched on the decoded start of a base64 string.
_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"II*\x00", b"MM\x00*", b"BM")


@dataclass(frozen=True)
class Found:
    """One embedded image (or widget state or view) and where it is."""

    where: str
    what: str
    allowed: bool = False  # a figure output of a cell not tagged dataset-faces


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "".join(value)
    return None


def is_base64_image(text: str) -> bool:
    """Whether ``text`` is a base64-encoded raster image (PNG, JPEG, GIF, WebP, TIFF, BMP)."""
    text = text.strip()
    if not _B64.fullmatch(text):
        return False
    head = re.sub(r"\s", "", text)[:32]
    try:
        raw = base64.b64decode(head + "=" * (-len(head) % 4))
    except (binascii.Error, ValueError):
        return False
    return raw.startswith(_MAGIC) or (raw[:4] == b"RIFF" and raw[8:12] == b"WEBP")


def _is_image(key: str, value: object) -> bool:
    text = _text(value)
    if text is None:
        return False
    return key.startswith("image/") or bool(DATA_URI.search(text)) or is_base64_image(text)


def _walk(value: object, where: str) -> Iterator[Found]:
    """Images and widget state anywhere inside a metadata value."""
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{where}.{key}"
            if key == WIDGET_STATE:
                yield Found(here, "saved widget state")
            if _is_image(str(key), item):
                yield Found(here, "image in metadata")
            else:
                yield from _walk(item, here)
    elif isinstance(value, list):
        if _text(value) is None:
            for i, item in enumerate(value):
                yield from _walk(item, f"{where}[{i}]")
        elif _is_image("", value):
            yield Found(where, "image in metadata")
    elif isinstance(value, str) and _is_image("", value):
        yield Found(where, "image in metadata")


def _tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def find_images(nb: dict) -> list[Found]:
    """Every embedded image, saved widget state and widget view in ``nb``, with its location."""
    found = list(_walk(nb.get("metadata", {}), "metadata"))
    if "widgets" in nb.get("metadata", {}) and not any(f.what == "saved widget state"
                                                       for f in found):
        found.insert(0, Found("metadata.widgets", "saved widget state"))
    for i, cell in enumerate(nb.get("cells", [])):
        at = f"cell {i} ({cell.get('cell_type')})"
        figure_ok = FACE_TAG not in _tags(cell)
        found += _walk(cell.get("metadata", {}), f"{at} metadata")
        for name, bundle in (cell.get("attachments") or {}).items():
            found += [Found(f"{at} attachment {name!r} {mime}", "attachment")
                      for mime in (bundle or {"?": None})]
        source = _text(cell.get("source", "")) or ""
        if DATA_URI.search(source):
            found.append(Found(f"{at} source", "inline data: image"))
        for k, out in enumerate(cell.get("outputs", [])):
            where = f"{at} output {k}"
            for mime, value in (out.get("data") or {}).items():
                if mime == WIDGET_VIEW:
                    found.append(Found(f"{where} {mime}", "widget view"))
                elif mime.startswith("image/"):
                    found.append(Found(f"{where} {mime}", "image output", figure_ok))
                elif mime in TEXT_MIMES and DATA_URI.search(_text(value) or ""):
                    found.append(Found(f"{where} {mime}", "inline data: image", figure_ok))
            found += _walk(out.get("metadata", {}), f"{where} metadata")
    return found


def leaks(nb: dict) -> list[Found]:
    """What may show a dataset face: every finding but figure outputs of untagged cells."""
    return [f for f in find_images(nb) if not f.allowed]


def _clean(value: object) -> object:
    """``value`` without images and widget state, at any depth."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()
                if k != WIDGET_STATE and not _is_image(str(k), v)}
    if isinstance(value, list) and _text(value) is None:
        return [_clean(v) for v in value if not _is_image("", v)]
    return value


def strip(nb: dict) -> list[str]:
    """Remove, in place, what may show a dataset face; return what was removed, by location."""
    removed = []
    meta = nb.setdefault("metadata", {})
    if meta.pop("widgets", None) is not None:
        removed.append("metadata.widgets")
    if (clean := _clean(meta)) != meta:
        nb["metadata"] = clean
        removed.append("images in metadata")
    for i, cell in enumerate(nb.get("cells", [])):
        at = f"cell {i}"
        if (clean := _clean(cell.get("metadata", {}))) != cell.get("metadata", {}):
            cell["metadata"] = clean
            removed.append(f"{at} images in metadata")
        if cell.pop("attachments", None):
            removed.append(f"{at} attachments")
        if cell.get("cell_type") != "code":
            continue
        if FACE_TAG in _tags(cell) and cell.get("outputs"):
            cell["outputs"] = []
            removed.append(f"{at} outputs ({FACE_TAG})")
        outputs = []
        for out in cell.get("outputs", []):
            if WIDGET_VIEW in out.get("data", {}):
                out["data"] = {m: v for m, v in out["data"].items() if m != WIDGET_VIEW}
                removed.append(f"{at} widget view")
                if not out["data"]:
                    continue
            if (clean := _clean(out.get("metadata", {}))) != out.get("metadata", {}):
                out["metadata"] = clean
                removed.append(f"{at} images in output metadata")
            outputs.append(out)
        cell["outputs"] = outputs
    return removed


def dumps(nb: dict) -> str:
    """The notebook's JSON as Jupyter writes it (nbformat: indent 1, sorted keys)."""
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def strip_file(path: Path | str) -> list[str]:
    """Strip the notebook at ``path`` in place (atomically; untouched if nothing to remove)."""
    path = Path(path)
    nb = json.loads(path.read_text(encoding="utf-8"))
    removed = strip(nb)
    if removed:
        text, mode = dumps(nb), path.stat().st_mode & 0o777

        def write(tmp: Path) -> None:
            tmp.write_text(text, encoding="utf-8")
            tmp.chmod(mode)  # mkstemp makes 0600 files

        atomic_write(path, write)
    return removed


def _git(*args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(["git", *args], input=stdin, check=True, capture_output=True).stdout


def strip_staged() -> dict[str, tuple[list[str], list[str]]]:
    """Strip the notebooks staged in git's index (the working tree is left alone).

    Returns, per notebook, what was stripped and what may still show a dataset face.
    """
    names = _git("diff", "--cached", "--name-only", "--diff-filter=ACMR", "-z", "--",
                 "*.ipynb").decode().split("\0")
    report = {}
    for name in filter(None, names):
        mode = _git("ls-files", "--stage", "--", name).decode().split()[0]
        try:
            nb = json.loads(_git("show", f":{name}"))
        except json.JSONDecodeError as err:
            report[name] = ([], [f"not a notebook, cannot check it ({err})"])
            continue
        removed = strip(nb)
        if removed:
            blob = _git("hash-object", "-w", "--stdin", f"--path={name}",
                        stdin=dumps(nb).encode()).decode().strip()
            _git("update-index", "--cacheinfo", f"{mode},{blob},{name}")
        report[name] = (removed, [f"{f.where}: {f.what}" for f in leaks(nb)])
    return report


def main(argv: list[str] | None = None) -> int:
    """``strip-notebooks``: strip, check, or strip git's staged notebooks; 1 if leaks remain."""
    parser = argparse.ArgumentParser(prog="python -m bplf strip-notebooks",
                                     description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments (shared with ``bplf.cli``)."""
    parser.add_argument("files", nargs="*", type=Path, help="notebooks (.ipynb)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="change nothing; list what may show a dataset face, exit 1 if any")
    mode.add_argument("--staged", action="store_true",
                      help="strip the notebooks staged in git's index (the pre-commit hook)")


def run(args: argparse.Namespace) -> int:
    """Run the command; the exit status: 1 if an image that strip cannot remove is left."""
    failed = False
    if args.staged:
        for name, (removed, left) in strip_staged().items():
            for what in removed:
                print(f"{name}: stripped {what} (in the commit only)", file=sys.stderr)
            for what in left:
                print(f"{name}: {what}", file=sys.stderr)
            failed |= bool(left)
        return int(failed)
    for path in args.files:
        if args.check:
            found = leaks(json.loads(path.read_text(encoding="utf-8")))
        else:
            for what in strip_file(path):
                print(f"{path}: stripped {what}")
            found = leaks(json.loads(path.read_text(encoding="utf-8")))
        for f in found:
            print(f"{path}: {f.where}: {f.what}", file=sys.stderr)
        failed |= bool(found)
    return int(failed)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
