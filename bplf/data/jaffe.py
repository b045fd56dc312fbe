"""JAFFE reader: ``jaffe/<subject>.<code><n>.<id>.tiff``, 256x256 whole heads, cropped to faces."""

from __future__ import annotations

import re

import cv2
import numpy as np

from bplf.data.archive import RawTree
from bplf.data.errors import DatasetError, ImageError
from bplf.data.images import MAX_IMAGE_BYTES, SIZE, decode_gray
from bplf.data.labels import JAFFE_CODES
from bplf.data.source import SourceData
from bplf.utils import progress

FILENAME = re.compile(r"^([A-Z]{2})\.([A-Z]{2})(\d+)\.(\d+)\.tiff?$", re.IGNORECASE)
#: The Haar box spans brows to mouth; shifting it down a little brings it to FER-2013's framing
#: (eyes at ~40% of the height, mouth at ~75%), compared against FER's mean face in notebook 01.
CROP_SCALE = 1.0
CROP_SHIFT_DOWN = 0.05


def looks_like(tree: RawTree) -> bool:
    return any(FILENAME.match(f.rsplit("/", 1)[-1]) for f in tree.files())


def haar_cascade() -> cv2.CascadeClassifier:
    """OpenCV's stock frontal-face Haar cascade (bundled with opencv-python-headless < 5)."""
    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"OpenCV's bundled Haar cascade could not be loaded from {path}; "
                           "install opencv-python-headless < 5 (OpenCV 5 no longer bundles it)")
    return cascade


def face_box(img: np.ndarray, cascade: cv2.CascadeClassifier) -> tuple[int, int, int, int] | None:
    """The largest frontal face as (x, y, w, h), or None when the detector finds none."""
    faces = cascade.detectMultiScale(img, scaleFactor=1.1, minNeighbors=5,
                                     minSize=(img.shape[0] // 4, img.shape[1] // 4))
    if len(faces) == 0:
        return None
    x, y, w, h = max(faces, key=lambda b: b[2] * b[3])
    return int(x), int(y), int(w), int(h)


def crop_face(img: np.ndarray, box: tuple[int, int, int, int] | None) -> np.ndarray:
    """Crop a square around ``box`` in FER-2013's framing and resize to 48x48.

    With no box, a fixed central square is used (JAFFE's heads are centred).
    """
    hgt, wid = img.shape
    if box is None:
        cx, cy, side = wid / 2, hgt * 0.55, min(hgt, wid) * 0.55
    else:
        x, y, w, h = box
        side = max(w, h) * CROP_SCALE
        cx, cy = x + w / 2, y + h / 2 + CROP_SHIFT_DOWN * h
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = int(round(side))
    # pad by edge replication where the square leaves the image
    pad = max(0, -x0, -y0, x0 + s - wid, y0 + s - hgt)
    padded = np.pad(img, pad, mode="edge") if pad else img
    crop = padded[y0 + pad : y0 + pad + s, x0 + pad : x0 + pad + s]
    return cv2.resize(crop, (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def read(tree: RawTree, name: str = "jaffe") -> SourceData:
    """Read JAFFE's TIFFs (grayscale or palette), detect and crop each face to 48x48."""
    out = SourceData(name=name, origin=str(tree.path))
    cascade = haar_cascade()
    members = [f for f in tree.files() if f.lower().endswith((".tif", ".tiff"))]
    bad = [f for f in members if not FILENAME.match(f.rsplit("/", 1)[-1])]
    if bad:
        more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
        raise DatasetError(f"{tree.where(bad[0])}: not a JAFFE file name "
                           f"(<subject>.<code><n>.<id>.tiff){more}")
    detected, fallback = 0, []
    for f in progress(members, desc=f"{name} ({tree.name})", unit="img"):
        where = tree.where(f)
        subject, code = FILENAME.match(f.rsplit("/", 1)[-1]).groups()[:2]
        if code.upper() not in JAFFE_CODES:
            raise DatasetError(f"{where}: unknown JAFFE expression code {code!r}; expected "
                               f"{sorted(JAFFE_CODES)}")
        try:
            img = decode_gray(tree.read(f, MAX_IMAGE_BYTES), where)
        except ImageError as err:
            out.skip(where, str(err))
            continue
        if min(img.shape) < SIZE:
            out.skip(where, f"{where}: image is {img.shape[1]}x{img.shape[0]}, too small to crop a "
                            f"{SIZE}x{SIZE} face")
            continue
        box = face_box(img, cascade)
        if box is None:
            fallback.append(where)
        else:
            detected += 1
        out.add(crop_face(img, box), JAFFE_CODES[code.upper()], subject=f"jaffe:{subject.upper()}")
    out.notes["face_detection"] = {"detected": detected, "centre_crop_fallback": fallback}
    out.report_unread(tree, set(members), "JAFFE (jaffe/XX.EEn.NNN.tiff)")
    return out
