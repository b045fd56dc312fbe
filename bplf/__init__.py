"""bplf: a bi-parallel linear flow for facial expression generation, rebuilt for teaching.

The notebooks in ``notebooks/`` import this package for everything longer than a few lines.
"""

from bplf.data import EMOTIONS, EmotionSet, build_emotion_set, load_emotion_set
from bplf.likelihood import bits_per_dim, dequantize
from bplf.model import BPLF, PRESETS, ModelConfig, build_model
from bplf.pretrained import load_pretrained
from bplf.settings import pick, quick_mode, set_tf32

set_tf32(False)  # exact float32 inverses on CUDA (see settings.set_tf32)

__all__ = [
    "BPLF",
    "EMOTIONS",
    "PRESETS",
    "EmotionSet",
    "ModelConfig",
    "bits_per_dim",
    "build_emotion_set",
    "build_model",
    "dequantize",
    "load_emotion_set",
    "load_pretrained",
    "pick",
    "quick_mode",
]
__version__ = "0.1.0"
