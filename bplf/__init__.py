"""bplf: a bi-parallel linear flow for facial expression generation, rebuilt for teaching.

The notebooks in ``notebooks/`` import this package for everything longer than a few lines.
"""

from bplf.data import EMOTIONS, EmotionSet, build_emotion_set, load_emotion_set
from bplf.settings import pick, quick_mode

__all__ = [
    "EMOTIONS",
    "EmotionSet",
    "build_emotion_set",
    "load_emotion_set",
    "pick",
    "quick_mode",
]
__version__ = "0.1.0"
