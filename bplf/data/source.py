"""What a reader hands the builder: one source's faces, labels and the files it could not use."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from bplf.data.labels import EMOTION_INDEX


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

    def __len__(self) -> int:
        return len(self.images)
