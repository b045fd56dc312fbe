"""A procedural emotion-face set: the fallback when no raw dataset is present.

Faces are drawn from a few shapes (head, hair, eyes, brows, mouth) whose geometry depends on an
identity (subject) and an expression. It is not a substitute for real data: it lets every
notebook and test run on a fresh machine, and the builder says loudly when it is used.
"""

from __future__ import annotations

import numpy as np

from bplf.data.images import SIZE
from bplf.data.labels import EMOTIONS
from bplf.data.source import SourceData

# expression -> (eye openness, brow raise, brow inner tilt, mouth curve, mouth open, mouth width)
EXPRESSIONS: dict[str, tuple[float, float, float, float, float, float]] = {
    "angry":    (0.75, -0.06,  0.10, -0.05, 0.00, 0.85),
    "disgust":  (0.55, -0.04,  0.05, -0.12, 0.03, 0.90),
    "fear":     (1.40,  0.08, -0.08, -0.04, 0.10, 1.10),
    "happy":    (0.60,  0.02,  0.00,  0.20, 0.05, 1.15),
    "sad":      (0.80,  0.03, -0.10, -0.14, 0.00, 0.90),
    "surprise": (1.55,  0.13,  0.00,  0.00, 0.18, 0.60),
    "neutral":  (1.00,  0.00,  0.00,  0.00, 0.00, 1.00),
}  # fmt: skip


def _soft(d: np.ndarray, width: float = 1.5 / SIZE) -> np.ndarray:
    """Antialiased inside-indicator for a signed distance ``d`` (positive inside)."""
    return 0.5 * (1.0 + np.tanh(d / (2 * width)))  # the logistic, without overflow


def _segment_distance(u, v, p, q) -> np.ndarray:
    (x0, y0), (x1, y1) = p, q
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((u - x0) * dx + (v - y0) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return np.hypot(u - (x0 + t * dx), v - (y0 + t * dy))


def render_face(identity: dict, emotion: str, rng: np.random.Generator) -> np.ndarray:
    """Draw one 48x48 uint8 face of ``identity`` showing ``emotion``."""
    eye_open, brow_up, brow_tilt, curve, mouth_open, mouth_w = EXPRESSIONS[emotion]
    k = rng.uniform(0.75, 1.2)  # how strongly this image shows the expression
    coords = (np.arange(SIZE) + 0.5) / SIZE * 2 - 1
    v, u = np.meshgrid(coords, coords, indexing="ij")
    cx, cy = identity["cx"] + rng.normal(0, 0.02), identity["cy"] + rng.normal(0, 0.02)
    a, b = identity["a"], identity["b"]

    img = identity["bg"] + identity["bg_slope"] * u
    r2 = ((u - cx) / a) ** 2 + ((v - cy) / b) ** 2
    face = _soft(1 - r2, 0.08)
    img = img * (1 - face) + identity["skin"] * (1 - 0.25 * r2) * face
    hair = face * _soft(cy - identity["hairline"] * b - v, 0.03)
    img = img * (1 - hair) + identity["hair"] * hair

    ey, es, sp = cy - 0.12 * b, identity["eye"], identity["spacing"]
    for side in (-1, 1):
        ex = cx + side * sp
        ry = es * 0.55 * (1 + (eye_open - 1) * k)
        eye = _soft(1 - ((u - ex) / es) ** 2 - ((v - ey) / max(ry, 0.01)) ** 2, 0.15)
        img = img * (1 - eye) + 0.08 * eye
        by = ey - 0.16 - brow_up * k
        inner = (cx + side * sp * 0.35, by + brow_tilt * k)
        outer = (cx + side * sp * 1.45, by - brow_tilt * k * 0.3)
        brow = _soft(identity["brow"] - _segment_distance(u, v, inner, outer))
        img = img * (1 - 0.8 * brow) + 0.1 * brow * 0.8

    my = cy + 0.5 * b
    mw = identity["mouth"] * (1 + (mouth_w - 1) * k)
    t = np.clip((u - cx) / mw, -1, 1)
    skew = 0.06 * k if emotion == "disgust" else 0.0  # a one-sided sneer
    centre = my - curve * k * (t**2 - 0.5) + skew * t
    half = 0.025 + mouth_open * k * np.sqrt(np.clip(1 - t**2, 0, 1))
    lips = _soft(half - np.abs(v - centre), 0.012) * _soft(1 - np.abs((u - cx) / mw), 0.05)
    img = img * (1 - lips) + 0.12 * lips

    img = img * rng.uniform(0.85, 1.15) + rng.normal(0, 0.02, img.shape)
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def make_identity(rng: np.random.Generator) -> dict:
    return {
        "cx": rng.normal(0, 0.04), "cy": 0.08 + rng.normal(0, 0.04),
        "a": rng.uniform(0.66, 0.8), "b": rng.uniform(0.85, 0.98),
        "skin": rng.uniform(0.45, 0.85), "hair": rng.uniform(0.03, 0.35),
        "hairline": rng.uniform(0.45, 0.75), "bg": rng.uniform(0.1, 0.5),
        "bg_slope": rng.normal(0, 0.08), "eye": rng.uniform(0.07, 0.1),
        "spacing": rng.uniform(0.24, 0.32), "brow": rng.uniform(0.02, 0.035),
        "mouth": rng.uniform(0.2, 0.3),
    }  # fmt: skip


def generate(subjects: int = 64, per_emotion: int = 5, seed: int = 0) -> SourceData:
    """``subjects`` identities x 7 emotions x ``per_emotion`` images; splits by subject later."""
    rng = np.random.default_rng(seed)
    out = SourceData(name="synthetic", origin="procedural (bplf.data.synthetic)")
    for s in range(subjects):
        identity = make_identity(rng)
        for emotion in EMOTIONS:
            for _ in range(per_emotion):
                out.add(render_face(identity, emotion, rng), emotion, subject=f"synthetic:{s:03d}")
    return out
