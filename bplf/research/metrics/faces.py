"""What a person sees in a generated or edited face: is it a face, is it still the same person,
do the samples of one emotion differ from each other.

An emotion classifier's accuracy can rise while samples turn into white and black blotches
(guidance that saturates the couplings did exactly that), so every setting is also judged by:

* **face rate** (``face_found``): OpenCV's stock frontal-face Haar cascade, run on the 48x48
  face upscaled to 96x96 with the parameters in ``FACE_DETECTOR``, finds a face. Real FER-2013
  test faces: about 59%; the rate of real faces is the reference, not 100%;
* **joint rate** (``joint_rate``): a face *and* read as the requested emotion;
* **same-person reference** (``same_person_reference``): SSIM and RMSE between two real photos
  of one CK+ or JAFFE subject with different expressions, what a real expression change costs.
  An edit keeps the person when it is at least that close to its input (``keeps_person``);
* **diversity** (``pair_ssim``): the mean SSIM of two faces of one emotion (two samples drawn
  with different noise, or two different real people), so that a setting cannot win by drawing
  one prototype face per emotion; and **precision and recall** in a feature space
  (``precision_recall``, Kynkäänniemi et al. 2019).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from bplf.data import EmotionSet
from bplf.data.jaffe import haar_cascade
from bplf.data.labels import EMOTIONS

#: how a face is looked for: the image upscaled to ``size`` x ``size`` (bilinear), then the
#: stock cascade with these detectMultiScale parameters
FACE_DETECTOR = {"size": 96, "scaleFactor": 1.1, "minNeighbors": 3, "minSize": (40, 40)}
#: the sources whose subjects are known, so that two photos of one person can be paired
SUBJECT_SOURCES = ("ckplus", "jaffe")


def face_found(images: np.ndarray) -> np.ndarray:
    """For each uint8 face (N, H, W): whether the stock Haar cascade finds a face in it
    (``FACE_DETECTOR``) -> (N,) bool."""
    cascade = haar_cascade()
    size = FACE_DETECTOR["size"]
    params = {k: v for k, v in FACE_DETECTOR.items() if k != "size"}
    found = np.zeros(len(images), dtype=bool)
    for i, img in enumerate(np.asarray(images, dtype=np.uint8)):
        big = cv2.resize(np.ascontiguousarray(img), (size, size), interpolation=cv2.INTER_LINEAR)
        found[i] = len(cascade.detectMultiScale(big, **params)) > 0
    return found


def joint_rate(found: np.ndarray, read: np.ndarray) -> float:
    """The share of faces that are found as a face *and* read as their emotion."""
    found, read = np.asarray(found, dtype=bool), np.asarray(read, dtype=bool)
    return float((found & read).mean()) if len(found) else float("nan")


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> np.ndarray:
    """Structural similarity (Wang et al. 2004: 11x11 Gaussian window of sigma 1.5, K1 = 0.01,
    K2 = 0.03, valid region) of uint8 images (N, H, W) pairwise -> (N,); 1 = identical. Agrees
    with scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=255)`` (tested)."""
    x = torch.as_tensor(np.array(a, dtype=np.float64))[:, None]
    y = torch.as_tensor(np.array(b, dtype=np.float64))[:, None]
    w = _gaussian_window(min(11, x.shape[-1]))
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = F.conv2d(x, w), F.conv2d(y, w)
    vx = F.conv2d(x * x, w) - mx**2
    vy = F.conv2d(y * y, w) - my**2
    cov = F.conv2d(x * y, w) - mx * my
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1).numpy()


def rmse(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> np.ndarray:
    """Pixel RMSE of uint8 images (N, H, W) pairwise, in grey levels -> (N,)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return np.sqrt((d**2).reshape(len(d), -1).mean(1))


def same_emotion_pairs(labels: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j), i != j, of two different faces of the same emotion (each face of an
    emotion with at least 2 faces paired with another one, drawn with ``seed``)."""
    rng = np.random.default_rng(seed)
    first, second = [], []
    for k in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == k))
        if len(idx) >= 2:
            first.append(idx)
            second.append(np.roll(idx, 1))
    if not first:
        return np.zeros(0, int), np.zeros(0, int)
    return np.concatenate(first), np.concatenate(second)


def pair_ssim(images: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    """Diversity: the mean SSIM of pairs of different faces of one emotion
    (``same_emotion_pairs``). Real faces of two different people: about 0.07; samples that are
    all one prototype face: close to 1."""
    i, j = same_emotion_pairs(np.asarray(labels), seed)
    return float(ssim(images[i], images[j]).mean()) if len(i) else float("nan")


def same_person_pairs(es: EmotionSet, n_pairs: int = 2000, seed: int = 0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n_pairs`` index pairs (i, j) of two photos of the same CK+ or JAFFE subject with
    different expressions (every split: the reference is a property of real photos), drawn
    with ``seed``."""
    rng = np.random.default_rng(seed)
    first, second = [], []
    for source in SUBJECT_SOURCES:
        idx = np.flatnonzero((es.source == source) & (es.subject != ""))
        for subject in np.unique(es.subject[idx]):
            mine = idx[es.subject[idx] == subject]
            a, b = np.triu_indices(len(mine), 1)
            differ = es.labels[mine[a]] != es.labels[mine[b]]
            first.append(mine[a[differ]])
            second.append(mine[b[differ]])
    if not first or not sum(map(len, first)):
        return np.zeros(0, int), np.zeros(0, int)
    i, j = np.concatenate(first), np.concatenate(second)
    take = rng.permutation(len(i))[:n_pairs]
    return i[take], j[take]


def same_person_reference(es: EmotionSet, n_pairs: int = 2000, seed: int = 0) -> dict:
    """What a real expression change costs: mean SSIM and RMSE between two photos of one
    subject with different expressions (``same_person_pairs``). NaN where the loaded set has no
    subjects (the synthetic fallback)."""
    i, j = same_person_pairs(es, n_pairs, seed)
    if not len(i):
        return {"n": 0, "ssim": float("nan"), "rmse": float("nan")}
    return {"n": int(len(i)), "ssim": float(ssim(es.images[i], es.images[j]).mean()),
            "rmse": float(rmse(es.images[i], es.images[j]).mean()),
            "sources": [s for s in SUBJECT_SOURCES if (es.source[i] == s).any()]}


def keeps_person(edit_ssim: float, reference: dict) -> bool:
    """The one rule for "the edit keeps the person": its mean SSIM to the input is at least the
    same-person reference's (two real photos of one person, ``same_person_reference``). Where
    no reference could be measured (no subjects), no edit is said to keep the person."""
    return bool(edit_ssim >= reference["ssim"])


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3,
                     chunk: int = 2048) -> dict:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of feature sets (rows):
    precision, the share of ``fake`` inside the real manifold (within the distance of some real
    point to its ``k``-th nearest real neighbour); recall, the share of ``real`` inside the fake
    manifold. Agrees with the ``prdc`` package's (tested)."""
    real = torch.as_tensor(np.asarray(real, dtype=np.float64))
    fake = torch.as_tensor(np.asarray(fake, dtype=np.float64))

    def radii(x: torch.Tensor) -> torch.Tensor:  # distance to the k-th neighbour (self is 0th)
        return torch.cat([torch.cdist(x[i : i + chunk], x).kthvalue(k + 1, dim=1).values
                          for i in range(0, len(x), chunk)])

    r_real, r_fake = radii(real), radii(fake)
    inside_real = torch.zeros(len(fake), dtype=torch.bool)
    inside_fake = torch.zeros(len(real), dtype=torch.bool)
    for i in range(0, len(real), chunk):
        d = torch.cdist(real[i : i + chunk], fake)  # (real chunk, fake)
        inside_real |= (d < r_real[i : i + chunk, None]).any(0)
        inside_fake[i : i + chunk] = (d < r_fake[None, :]).any(1)
    return {"precision": float(inside_real.double().mean()),
            "recall": float(inside_fake.double().mean()), "k": k}


def face_report(images: np.ndarray, labels: np.ndarray, read: np.ndarray,
                seed: int = 0) -> dict:
    """Face rate, the classifier's reading rate, the joint rate (overall and per emotion) and the
    diversity (``pair_ssim``) of uint8 faces ``images`` meant to show ``labels``; ``read``: per
    face, whether the classifier reads its emotion."""
    found = face_found(images)
    labels = np.asarray(labels)
    return {"face_rate": float(found.mean()), "read_rate": float(np.mean(read)),
            "joint_rate": joint_rate(found, read), "pair_ssim": pair_ssim(images, labels, seed),
            "per_emotion_joint": {EMOTIONS[k]: joint_rate(found[labels == k], read[labels == k])
                                  for k in np.unique(labels)}}
