"""A small CNN emotion classifier: the judge of expression fidelity for generated faces.

It reads images in the flow's model space, ``x`` in [-0.5, 0.5) of shape (N, 1, 48, 48), so
samples from a flow go in as they are. Its penultimate layer (``features``) is the feature space
of the Fréchet distances in ``bplf.research.metrics.fidelity``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bplf.data import EMOTIONS, EmotionSet
from bplf.likelihood import dequantize
from bplf.settings import REPO_ROOT, default_device, setup_cpu
from bplf.utils import (
    append_line,
    atomic_save,
    atomic_write,
    check_fields,
    config_from_dict,
    load_state,
    load_torch,
    progress,
    read_json_object,
)

#: the classifier trained and committed by the repo (see its README.md for the command)
CLASSIFIER_DIR = REPO_ROOT / "checkpoints" / "emotion-cnn"
CONFIG_FILE, WEIGHTS_FILE, METRICS_FILE = "config.json", "model.pt", "metrics.jsonl"
_FIX = ("retrain it with `python -m bplf train-classifier --out DIR` (the shipped one: restore "
        "checkpoints/emotion-cnn from git)")


@dataclass
class ClassifierConfig:
    """Architecture and training of the emotion classifier (saved as ``config.json``)."""

    #: output channels of the convolutional blocks (two 3x3 convolutions, then 2x2 max-pool)
    widths: list[int] = field(default_factory=lambda: [16, 32, 64])
    #: size of the penultimate feature vector (a 3x3 convolution, then global average pooling)
    features: int = 128
    dropout: float = 0.3
    epochs: int = 30
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 5e-4
    #: random shifts of up to this many pixels (and horizontal flips) during training
    shift: int = 4
    seed: int = 0
    #: train on at most this many faces (None: the whole train split)
    train_limit: int | None = None

    @classmethod
    def from_dict(cls, d: dict) -> ClassifierConfig:
        check_fields(cls, d)
        return cls(**d)


#: every ClassifierConfig field: a saved config.json must state them all
CLASSIFIER_FIELDS_REQUIRED = ("widths", "features", "dropout", "epochs", "batch_size", "lr",
                              "weight_decay", "shift", "seed", "train_limit")


class EmotionCNN(nn.Module):
    """VGG-style blocks, a feature convolution, global average pooling, a linear classifier."""

    def __init__(self, config: ClassifierConfig | None = None, num_classes: int = len(EMOTIONS)):
        super().__init__()
        self.config = cfg = config or ClassifierConfig()
        layers: list[nn.Module] = []
        c_in = 1
        for width in cfg.widths:
            for _ in range(2):
                layers += [nn.Conv2d(c_in, width, 3, padding=1, bias=False),
                           nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
                c_in = width
            layers.append(nn.MaxPool2d(2))
        layers += [nn.Conv2d(c_in, cfg.features, 3, padding=1, bias=False),
                   nn.BatchNorm2d(cfg.features), nn.ReLU(inplace=True),
                   nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(cfg.features, num_classes))

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features (N, config.features): the space of the Fréchet distance."""
        return self.body(x * 4.0)  # [-0.5, 0.5) -> roughly unit scale

    def forward(self, x: Tensor) -> Tensor:
        """Logits (N, 7) of ``x`` in model space."""
        return self.head(self.features(x))


@torch.no_grad()
def predict(model: EmotionCNN, x: Tensor, batch_size: int = 512,
            features: bool = False) -> Tensor:
    """Class probabilities (N, 7), or penultimate features, of model-space images, on CPU."""
    model.eval()
    device = next(model.parameters()).device
    fn = model.features if features else (lambda b: model(b).softmax(dim=1))
    return torch.cat([fn(x[i : i + batch_size].to(device)).float().cpu()
                      for i in range(0, len(x), batch_size)])


def _augment(x: Tensor, shift: int, gen: torch.Generator) -> Tensor:
    """Random horizontal flips and shifts of up to ``shift`` pixels (edge padding)."""
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip.to(x.device)[:, None, None, None], x.flip(-1), x)
    if shift:
        padded = F.pad(x, (shift,) * 4, mode="replicate")
        dy, dx = (torch.randint(0, 2 * shift + 1, (2, n), generator=gen)).tolist()
        x = torch.stack([padded[i, :, a : a + h, b : b + w]
                         for i, (a, b) in enumerate(zip(dy, dx, strict=True))])
    return x


def predict_labels(model: EmotionCNN, images: np.ndarray) -> np.ndarray:
    """The most probable emotion of each uint8 face."""
    return predict(model, dequantize(images, centre=True)).argmax(dim=1).numpy()


def accuracy(model: EmotionCNN, images: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of uint8 faces whose most probable class is the label."""
    if len(labels) == 0:
        return float("nan")
    return float((predict_labels(model, images) == labels).mean())


def train_classifier(es: EmotionSet, out: Path | str, config: ClassifierConfig | None = None,
                     device: torch.device | str | None = None) -> EmotionCNN:
    """Train on the train split, keep the epoch with the best val accuracy, write ``out``:
    ``config.json``, ``model.pt`` (best weights), ``metrics.jsonl`` (one row per epoch)."""
    cfg = config or ClassifierConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(device) if device else default_device()
    setup_cpu()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    train = es.select(split="train")
    if cfg.train_limit:
        train = train.subsample(cfg.train_limit, seed=cfg.seed)
    val = es.select(split="val")
    if len(train) == 0 or len(val) == 0:
        raise ValueError("the emotion set has no train or no val faces")
    x_train = dequantize(train.images, centre=True).to(device)
    y_train = torch.from_numpy(train.labels)
    model = EmotionCNN(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = -(-len(train) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, epochs=cfg.epochs,
                                                steps_per_epoch=steps_per_epoch)
    save_classifier(model, out)
    metrics = out / METRICS_FILE
    metrics.unlink(missing_ok=True)
    best, wall = -1.0, 0.0
    for epoch in progress(range(1, cfg.epochs + 1), desc="epochs"):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(train), generator=gen)
        losses, correct = [], 0
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            xb = _augment(x_train[idx.to(device)], cfg.shift, gen)
            yb = y_train[idx].to(device)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            correct += int((logits.argmax(1) == yb).sum())
        wall += time.perf_counter() - t0
        row = {"epoch": epoch, "wall": round(wall, 2), "train_loss": float(np.mean(losses)),
               "train_acc": correct / len(train),
               "val_acc": accuracy(model, val.images, val.labels)}
        append_line(metrics, json.dumps(row))
        if row["val_acc"] > best:
            best = row["val_acc"]
            save_classifier(model, out, epoch)
    return load_classifier(out, device)


def save_classifier(model: EmotionCNN, out: Path | str, epoch: int | None = None) -> None:
    """Write ``out/config.json`` and, with ``epoch``, the weights ``out/model.pt``; each write is
    atomic, so a failed one (a full disk) keeps the previous file loadable."""
    out = Path(out)
    text = json.dumps(asdict(model.config), indent=1)
    atomic_write(out / CONFIG_FILE, lambda tmp: tmp.write_text(text))
    if epoch is not None:
        atomic_save({"model": model.state_dict(), "epoch": epoch}, out / WEIGHTS_FILE)


def load_classifier(path: Path | str | None = None,
                    device: torch.device | str | None = None) -> EmotionCNN:
    """The shipped classifier (or the one in directory ``path``), in eval mode; a damaged or
    mismatched ``config.json`` or ``model.pt`` raises ``CheckpointError`` naming the file."""
    path = Path(path) if path is not None else CLASSIFIER_DIR
    config = path / CONFIG_FILE
    try:
        payload = read_json_object(config, _FIX)
    except FileNotFoundError:
        raise FileNotFoundError(f"{config}: no classifier here; train one with "
                                "`python -m bplf train-classifier --out DIR`") from None
    cfg = config_from_dict(ClassifierConfig, payload, config, CLASSIFIER_FIELDS_REQUIRED, _FIX)
    file = path / WEIGHTS_FILE
    try:
        state = load_torch(file, f"weights of the classifier in {config}", _FIX)["model"]
    except FileNotFoundError:
        raise FileNotFoundError(f"{file}: no classifier weights; {_FIX}") from None
    model = EmotionCNN(cfg)
    load_state(model, state, file, config, "both must come from the same training run; "
               + _FIX)
    return model.to(device or "cpu").eval()


def evaluate_classifier(model: EmotionCNN, es: EmotionSet, split: str = "test") -> dict:
    """Accuracy per source and overall on ``split``, and the confusion matrix (JSON-ready;
    rows: true emotion, columns: predicted)."""
    data = es.select(split=split)
    pred = predict_labels(model, data.images)
    hit = pred == data.labels
    k = len(EMOTIONS)
    confusion = np.bincount(data.labels * k + pred, minlength=k * k).reshape(k, k)
    return {"split": split, "emotions": list(EMOTIONS),
            "sources": {str(s): {"n": int((data.source == s).sum()),
                                 "accuracy": float(hit[data.source == s].mean())}
                        for s in sorted(set(data.source))},
            "accuracy": float(hit.mean()), "n": len(data), "confusion": confusion.tolist()}
