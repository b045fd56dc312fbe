"""The harmonised 7-emotion label space and each source's names for it."""

from __future__ import annotations

#: FER-2013's order (its CSV's integer codes 0..6); every source is mapped onto it.
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
EMOTION_INDEX: dict[str, int] = {name: i for i, name in enumerate(EMOTIONS)}

#: Folder names used by FER-2013's image-folder distribution and by generic image folders.
FOLDER_NAMES: dict[str, str] = {
    "angry": "angry", "anger": "angry",
    "disgust": "disgust", "disgusted": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear",
    "happy": "happy", "happiness": "happy", "joy": "happy",
    "sad": "sad", "sadness": "sad",
    "surprise": "surprise", "surprised": "surprise",
    "neutral": "neutral",
}  # fmt: skip

#: CK+ folder names (CK+48 distribution).
CKPLUS_NAMES: dict[str, str] = {
    "anger": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy",
    "sadness": "sad", "surprise": "surprise",
}  # fmt: skip

#: JAFFE's two-letter expression codes.
JAFFE_CODES: dict[str, str] = {
    "AN": "angry", "DI": "disgust", "FE": "fear", "HA": "happy",
    "NE": "neutral", "SA": "sad", "SU": "surprise",
}  # fmt: skip

#: Labels some sources have that the 7-class set has no counterpart for: left out and counted.
EXCLUDED_NAMES: dict[str, str] = {
    "contempt": "contempt has no counterpart in the 7-emotion set (FER-2013 has no contempt)",
}

#: The sources' names as the course writes them (figure titles, widgets, README).
SOURCE_NAMES: dict[str, str] = {"fer2013": "FER-2013", "ckplus": "CK+", "jaffe": "JAFFE"}


def source_name(source: str) -> str:
    """``ckplus`` -> ``CK+``: a source as the course writes it (other names unchanged)."""
    return SOURCE_NAMES.get(str(source), str(source))
