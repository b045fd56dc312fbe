"""The merged emotion set: readers for FER-2013, CK+48, JAFFE and image folders, the builder,
and the loading API the notebooks use."""

from bplf.data.builder import build_emotion_set, find_sources, load_emotion_set
from bplf.data.dataset import SPLITS, EmotionDataset, EmotionSet
from bplf.data.errors import BuiltSetError, DatasetError, ImageError
from bplf.data.labels import EMOTIONS, SOURCE_NAMES, source_name

__all__ = [
    "EMOTIONS",
    "BuiltSetError",
    "SOURCE_NAMES",
    "SPLITS",
    "DatasetError",
    "EmotionDataset",
    "EmotionSet",
    "ImageError",
    "build_emotion_set",
    "find_sources",
    "load_emotion_set",
    "source_name",
]
