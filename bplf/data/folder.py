"""A generic labelled image folder: ``<name>/<emotion>/*.png|jpg`` (any size, cropped faces)."""

from __future__ import annotations

import re
import zlib

import cv2

from bplf.data.archive import RawTree
from bplf.data.errors import DatasetError, ImageError
from bplf.data.images import MAX_IMAGE_BYTES, SIZE, decode_gray, is_image_name
from bplf.data.labels import EXCLUDED_NAMES, FOLDER_NAMES
from bplf.data.source import SourceData, nested_in
from bplf.utils import progress

PATTERN = re.compile(r"(?:^|/)([^/]+)/([^/]+)$")


def _members(tree: RawTree) -> list[tuple[str, str]]:
    """(file, its folder) for each image; one nested below an emotion folder is not a member
    (the reader reports it)."""
    return [(f, m.group(1)) for f in tree.files()
            if is_image_name(f) and (m := PATTERN.search(f)) and nested_in(f) is None]


def looks_like(tree: RawTree) -> bool:
    return any(folder.lower() in FOLDER_NAMES for _, folder in _members(tree))


def read(tree: RawTree, name: str) -> SourceData:
    """Read every image under an emotion-named folder; resize to 48x48 where needed.

    No subjects are known, so each image is assigned to train/val/test (80/10/10) by a stable
    hash of its path.
    """
    out = SourceData(name=name, origin=str(tree.path))
    members = _members(tree)
    folders = {folder.lower() for _, folder in members}
    unknown = sorted(folders - set(FOLDER_NAMES) - set(EXCLUDED_NAMES))
    if unknown:
        raise DatasetError(f"{tree.path}: unknown emotion folder(s) {unknown}; expected "
                           f"{sorted(FOLDER_NAMES)}")
    resized = 0
    for f, folder in progress(members, desc=f"{name} ({tree.name})", unit="img"):
        where = tree.where(f)
        if folder.lower() in EXCLUDED_NAMES:
            out.excluded[f"{folder.lower()}: {EXCLUDED_NAMES[folder.lower()]}"] += 1
            continue
        try:
            img = decode_gray(tree.read(f, MAX_IMAGE_BYTES), where)
        except ImageError as err:
            out.skip(where, str(err))
            continue
        if img.shape != (SIZE, SIZE):
            img = cv2.resize(img, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
            resized += 1
        bucket = zlib.crc32(f.encode()) % 10
        split = "test" if bucket == 0 else "val" if bucket == 1 else "train"
        out.add(img, FOLDER_NAMES[folder.lower()], split=split)
    out.notes["resized_to_48"] = resized
    out.report_unread(tree, {f for f, _ in members}, "an image folder (<emotion>/*.png)")
    return out
