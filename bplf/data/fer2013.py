"""FER-2013 readers: the image-folder distribution and the original ``emotion,pixels,Usage`` CSV."""

from __future__ import annotations

import csv
import re
import zlib

import numpy as np

from bplf.data.archive import RawTree
from bplf.data.errors import DatasetError, ImageError
from bplf.data.images import MAX_IMAGE_BYTES, SIZE, decode_gray, is_image_name, require_size
from bplf.data.labels import EMOTIONS, FOLDER_NAMES
from bplf.data.source import SourceData
from bplf.utils import progress

FOLDER_PATTERN = re.compile(r"(?:^|/)(train|test)/([^/]+)/([^/]+)$")
#: The official split is in the file name of the image-folder form.
USAGE_SPLITS = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
CSV_HEADER = ["emotion", "pixels", "Usage"]


def looks_like_folders(tree: RawTree) -> bool:
    return any(FOLDER_PATTERN.search(f) and is_image_name(f) for f in tree.files())


def _read_text(tree: RawTree, member: str) -> str:
    """A CSV member as text (UTF-8, with or without a byte-order mark)."""
    try:
        data = tree.read(member)
    except ImageError as err:  # one damaged member is the whole CSV
        raise DatasetError(str(err)) from None
    return data.decode("utf-8-sig", "replace")


def csv_members(tree: RawTree) -> list[str]:
    """CSV files in ``tree`` whose header is FER-2013's."""
    found = []
    for name in tree.files():
        if name.lower().endswith(".csv"):
            head = _read_text(tree, name)[:64].splitlines()
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
            img = require_size(decode_gray(tree.read(f, MAX_IMAGE_BYTES), where), where)
        except ImageError as err:
            out.skip(where, str(err))
            continue
        out.add(img, emotion, split=_folder_split(folder, filename))
    out.report_unread(tree, {f for f, _ in members},
                      "FER-2013's image folders (train/<emotion>/*.jpg, test/<emotion>/*.jpg)")
    return out


def _csv_row(text: str, at: str) -> tuple[int, np.ndarray, str]:
    """Parse one line of the CSV: (label, 48x48 uint8 pixels, split). Raises ``ImageError``."""
    try:
        (row,) = csv.reader([text], strict=True)
    except csv.Error as err:
        raise ImageError(f"{at}: not a valid CSV row ({err}: an unbalanced quote?)") from None
    if len(row) < 3:
        raise ImageError(f"{at}: {len(row)} columns, expected 3")
    try:
        label = int(row[0])
    except ValueError:
        raise ImageError(f"{at}: emotion {row[0][:20]!r} is not an integer 0..6") from None
    usage = row[2].strip()
    if not 0 <= label < len(EMOTIONS):
        raise ImageError(f"{at}: emotion {label} is not in 0..6")
    if usage not in USAGE_SPLITS:
        raise ImageError(f"{at}: Usage {usage[:20]!r} is not one of {sorted(USAGE_SPLITS)}")
    try:
        pixels = np.array(row[1].split(), dtype=np.int64)
    except (ValueError, OverflowError):
        raise ImageError(f"{at}: pixels must be {SIZE * SIZE} whole numbers in 0..255 separated "
                         "by spaces") from None
    if pixels.size != SIZE * SIZE or pixels.min() < 0 or pixels.max() > 255:
        raise ImageError(f"{at}: {pixels.size} pixel values, expected {SIZE * SIZE} in 0..255")
    return label, pixels.astype(np.uint8).reshape(SIZE, SIZE), USAGE_SPLITS[usage]


def read_csv(tree: RawTree, member: str, name: str = "fer2013") -> SourceData:
    """Read FER-2013's original CSV: ``emotion`` 0..6, ``pixels`` 2304 values, ``Usage``.

    Each line is one row, parsed on its own: a bad line (an unbalanced quote included) is
    skipped and listed, and never swallows the lines after it.
    """
    out = SourceData(name=name, origin=str(tree.path))
    where = tree.where(member)
    lines = _read_text(tree, member).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    header = [c.strip() for c in lines[0].split(",")]
    if header[:3] != CSV_HEADER:
        raise DatasetError(f"{where}: header is {header[:5]}, expected {CSV_HEADER}")
    rows = lines[1:]
    for line, text in enumerate(progress(rows, desc=f"{name} ({tree.name})", unit="row"), start=2):
        if not text.strip():
            continue
        try:
            label, pixels, split = _csv_row(text, f"{where} line {line}")
        except ImageError as err:
            out.skip(f"{where} line {line}", str(err))
            continue
        out.add(pixels, EMOTIONS[label], split=split)
    out.report_unread(tree, {member}, f"the FER-2013 CSV input (only {member} is read)")
    return out
