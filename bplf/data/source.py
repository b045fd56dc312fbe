"""What a reader hands the builder: one source's faces, labels and the files it could not use."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from bplf.data.archive import RawTree, is_doc
from bplf.data.images import IMAGE_SUFFIXES, is_image_name
from bplf.data.labels import CKPLUS_NAMES, EMOTION_INDEX, EXCLUDED_NAMES, FOLDER_NAMES

#: Folder names that label their images, in any source (lower case).
EMOTION_FOLDERS = {n.lower() for n in (*FOLDER_NAMES, *CKPLUS_NAMES, *EXCLUDED_NAMES)}


def nested_in(name: str) -> str | None:
    """The emotion folder a file sits more than one folder below, if any: ``d/happy`` for
    ``d/happy/a/x.png``."""
    folders = name.split("/")[:-1]
    if folders and folders[-1].lower() in EMOTION_FOLDERS:
        return None
    for i in range(len(folders) - 1, -1, -1):
        if folders[i].lower() in EMOTION_FOLDERS:
            return "/".join(folders[: i + 1])
    return None


@dataclass
class SourceData:
    """Faces from one raw source. ``split`` is empty where the builder assigns it by subject."""

    name: str
    origin: str = ""
    images: list[np.ndarray] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)
    #: files that could not be used: {"file": where, "reason": why}
    skipped: list[dict] = field(default_factory=list)
    #: images deliberately left out, counted by reason (e.g. CK+ contempt)
    excluded: Counter = field(default_factory=Counter)
    notes: dict = field(default_factory=dict)

    def add(self, image: np.ndarray, emotion: str, subject: str = "", split: str = "") -> None:
        self.images.append(image)
        self.labels.append(EMOTION_INDEX[emotion])
        self.subjects.append(subject)
        self.splits.append(split)

    def skip(self, where: str, reason: str) -> None:
        self.skipped.append({"file": where, "reason": reason})

    def report_unread(self, tree: RawTree, used: set[str], layout: str) -> None:
        """List as skipped every file of ``tree`` the reader did not use (documentation aside)
        and every entry the tree could not list, so that nothing is lost without a word."""
        for problem in tree.problems:
            self.skipped.append(dict(problem))
        for f in tree.files():
            if f in used or is_doc(f):
                continue
            where = tree.where(f)
            if (prefix := nested_in(f)) is not None:
                why = (f"nested below the emotion folder {prefix}/ (one folder too deep); move it "
                       f"into {prefix}/ to use it")
            elif not is_image_name(f):
                why = f"not an image file ({', '.join(IMAGE_SUFFIXES)}) in {layout}"
            else:
                why = f"not in a place where {layout} has images"
            self.skip(where, f"{where}: not read: {why}")

    def __len__(self) -> int:
        return len(self.images)
