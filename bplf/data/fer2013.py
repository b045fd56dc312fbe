"""FER-2013 readers: the image-folder distribution and the original ``emotion,pixels,Usage`` CSV."""

from __future__ import annotations

import csv
import io
import re
import zlib

import numpy as np

from bplf.data.archive import RawTree
from bplf.data.errors import DatasetError, ImageError
from bplf.data.images import SIZE, decode_gray, is_image_name, require_size
from bplf.data.labels import EMOTIONS, FOLDER_NAMES
from bplf.data.source import SourceData
from bplf.utils import progress

FOLDER_PATTERN = re.compile(r"(?:^|/)(train|test)/([^/]+)/([^/]+)$")
#: The official split is in the file name of the image-folder form.
USAGE_SPLITS = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
CSV_HEADER = ["emotion", "pixels", "Usage"]


def looks_like_folders(tree: RawTree) -> bool:
    return any(FOLDER_PATTERN.search(f) and is_image_name(f) for f in tree.files())


def csv_members(tree: RawTree) -> list[str]:
    """CSV files in ``tree`` whose header is FER-2013's."""
    found = []
    for name in tree.files():
        if name.lower().endswith(".csv"):
            head = tree.read(name)[:64].decode("utf-8", "replace").splitlines()
            if head and [c.strip() for c in head[0].split(",")][:3] == CSV_HEADER:
                found.append(name)
    return found


def _folder_split(folder: str, filename: str) -> str:
    prefix = filename.split("_", 1)[0]
    if prefix in USAGE_SPLITS:
        return USAGE_SPLITS[prefix]
    if folder == "train":
        return "train"
    # A test/ folder without PublicTest_/PrivateTest_ names: halve it by a stable hash.
    return "val" if zlib.crc32(filename.encode()) % 2 else "test"


def read_folders(tree: RawTree, name: str = "fer2013") -> SourceData:
    """Read ``train/<emotion>/*.jpg`` and ``test/<emotion>/*.jpg`` (48x48 grayscale)."""
    out = SourceData(name=name, origin=str(tree.path))
    members = [(f, m) for f in tree.files() if (m := FOLDER_PATTERN.search(f)) and is_image_name(f)]
    unknown = sorted({m.group(2) for _, m in members if m.group(2).lower() not in FOLDER_NAMES})
    if unknown:
        raise DatasetError(f"{tree.path}: unknown emotion folder(s) {unknown}; expected "
                           f"{sorted(FOLDER_NAMES)}")
    for f, m in progress(members, desc=f"{name} ({tree.name})", unit="img"):
        folder, emotion, filename = m.group(1), FOLDER_NAMES[m.group(2).lower()], m.group(3)
        where = tree.where(f)
        try:
            img = require_size(decode_gray(tree.read(f), where), where)
        except ImageError as err:
            out.skip(where, str(err))
            continue
        out.add(img, emotion, split=_folder_split(folder, filename))
    return out


def read_csv(tree: RawTree, member: str, name: str = "fer2013") -> SourceData:
    """Read FER-2013's original CSV: ``emotion`` 0..6, ``pixels`` 2304 values, ``Usage``."""
    out = SourceData(name=name, origin=str(tree.path))
    where = tree.where(member)
    text = io.StringIO(tree.read(member).decode("utf-8", "replace"))
    reader = csv.reader(text)
    header = [c.strip() for c in next(reader, [])]
    if header[:3] != CSV_HEADER:
        raise DatasetError(f"{where}: header is {header}, expected {CSV_HEADER}")
    rows = list(reader)
    for line, row in enumerate(progress(rows, desc=f"{name} ({tree.name})", unit="row"), start=2):
        if not row:
            continue
        try:
            if len(row) < 3:
                raise ImageError(f"{where} line {line}: {len(row)} columns, expected 3")
            label, usage = int(row[0]), row[2].strip()
            if not 0 <= label < len(EMOTIONS):
                raise ImageError(f"{where} line {line}: emotion {label} is not in 0..6")
            if usage not in USAGE_SPLITS:
                raise ImageError(f"{where} line {line}: Usage {usage!r} is not one of "
                                 f"{sorted(USAGE_SPLITS)}")
            pixels = np.array(row[1].split(), dtype=np.int64)
            if pixels.size != SIZE * SIZE or pixels.min() < 0 or pixels.max() > 255:
                raise ImageError(f"{where} line {line}: {pixels.size} pixel values, expected "
                                 f"{SIZE * SIZE} in 0..255")
        except ValueError as err:  # ImageError is a ValueError; so are int() failures
            msg = str(err) if isinstance(err, ImageError) else f"{where} line {line}: {err}"
            out.skip(f"{where} line {line}", msg)
            continue
        out.add(pixels.astype(np.uint8).reshape(SIZE, SIZE), EMOTIONS[label],
                split=USAGE_SPLITS[usage])
    return out
