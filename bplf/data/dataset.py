"""The built emotion set in memory, and a torch ``Dataset`` over it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from bplf.data.labels import EMOTIONS

SPLITS = ("train", "val", "test")


@dataclass
class EmotionSet:
    """Faces with their labels: ``images`` (N,48,48) uint8, ``labels`` (N,) in 0..6 (FER order),
    ``source``, ``subject`` ("" where unknown) and ``split`` as string arrays."""

    images: np.ndarray
    labels: np.ndarray
    source: np.ndarray
    subject: np.ndarray
    split: np.ndarray
    manifest: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return (f"EmotionSet({len(self)} faces, sources={sorted(map(str, set(self.source)))}, "
                f"splits={ {s: int((self.split == s).sum()) for s in SPLITS} })")

    @property
    def synthetic(self) -> bool:
        """True when built from the procedural fallback, not from real data."""
        return bool(self.manifest.get("synthetic", False))

    def _take(self, mask_or_index: np.ndarray) -> EmotionSet:
        return EmotionSet(self.images[mask_or_index], self.labels[mask_or_index],
                          self.source[mask_or_index], self.subject[mask_or_index],
                          self.split[mask_or_index], self.manifest)

    def select(self, split: str | None = None, source: str | None = None,
               emotion: str | int | None = None) -> EmotionSet:
        """The faces of one split / source / emotion (any combination)."""
        mask = np.ones(len(self), dtype=bool)
        if split is not None:
            if split not in SPLITS:
                raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
            mask &= self.split == split
        if source is not None:
            mask &= self.source == source
        if emotion is not None:
            index = EMOTIONS.index(emotion) if isinstance(emotion, str) else emotion
            mask &= self.labels == index
        return self._take(mask)

    def subsample(self, n: int, seed: int = 0) -> EmotionSet:
        """At most ``n`` faces, drawn without replacement with a fixed seed."""
        if n >= len(self):
            return self
        idx = np.sort(np.random.default_rng(seed).choice(len(self), size=n, replace=False))
        return self._take(idx)

    def counts(self) -> pd.DataFrame:
        """Long table of counts: one row per (source, split, emotion)."""
        df = pd.DataFrame({"source": self.source, "split": self.split,
                           "emotion": np.asarray(EMOTIONS)[self.labels]})
        return df.value_counts().rename("count").reset_index()

    def torch_dataset(self, split: str | None = None, flip: bool = False) -> EmotionDataset:
        """A torch ``Dataset`` of (uint8 image (1,48,48), label) pairs."""
        subset = self.select(split=split) if split else self
        return EmotionDataset(subset.images, subset.labels, flip=flip)


class EmotionDataset(Dataset):
    """(uint8 tensor (1,48,48), int label); ``flip`` mirrors each face with probability 1/2."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, flip: bool = False):
        self.images = torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1)
        self.labels = torch.from_numpy(labels.astype(np.int64))
        self.flip = flip

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = self.images[i]
        if self.flip and torch.rand(()) < 0.5:
            img = img.flip(-1)
        return img, int(self.labels[i])
