"""CK+ reader for the CK+48 distribution: ``CK+48/<emotion>/S<subject>_<seq>_<frame>.png``."""

from __future__ import annotations

import re

from bplf.data.archive import RawTree
from bplf.data.errors import DatasetError, ImageError
from bplf.data.images import MAX_IMAGE_BYTES, decode_gray, is_image_name, require_size
from bplf.data.labels import CKPLUS_NAMES, EXCLUDED_NAMES
from bplf.data.source import SourceData
from bplf.utils import progress

PATTERN = re.compile(r"(?:^|/)CK\+48/([^/]+)/([^/]+)$")
FILENAME = re.compile(r"^(S\d+)_(\d+)_(\d+)\.\w+$")


def looks_like(tree: RawTree) -> bool:
    return any(PATTERN.search(f) for f in tree.files())


def read(tree: RawTree, name: str = "ckplus") -> SourceData:
    """Read CK+48 peak frames; contempt is counted and left out. Splits are by subject later."""
    out = SourceData(name=name, origin=str(tree.path))
    members = [(f, m) for f in tree.files() if (m := PATTERN.search(f)) and is_image_name(f)]
    folders = {m.group(1) for _, m in members}
    unknown = sorted(folders - set(CKPLUS_NAMES) - set(EXCLUDED_NAMES))
    if unknown:
        raise DatasetError(f"{tree.path}: unknown CK+ emotion folder(s) {unknown}; expected "
                           f"{sorted(CKPLUS_NAMES) + sorted(EXCLUDED_NAMES)}")
    for f, m in progress(members, desc=f"{name} ({tree.name})", unit="img"):
        folder, filename = m.groups()
        where = tree.where(f)
        if folder in EXCLUDED_NAMES:
            out.excluded[f"{folder}: {EXCLUDED_NAMES[folder]}"] += 1
            continue
        subject = FILENAME.match(filename)
        if subject is None:
            out.skip(where, f"{where}: file name does not match S<subject>_<seq>_<frame>, so its "
                            "subject (needed for the subject-disjoint split) is unknown")
            continue
        try:
            img = require_size(decode_gray(tree.read(f, MAX_IMAGE_BYTES), where), where)
        except ImageError as err:
            out.skip(where, str(err))
            continue
        out.add(img, CKPLUS_NAMES[folder], subject=f"ck:{subject.group(1)}")
    out.report_unread(tree, {f for f, _ in members}, "CK+48 (CK+48/<emotion>/*.png)")
    return out
