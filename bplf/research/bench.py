"""Throughput of the presets: training steps, likelihood evaluation and sampling, in images/s."""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path

import pandas as pd
import torch

from bplf.likelihood import dequantize
from bplf.model import build_model
from bplf.settings import REPO_ROOT

#: the committed outputs of `python -m bplf bench` (commands in README.md), and where each ran
BENCH_FILES = {"bench_h100_b64.json": "H100", "bench_h100_b256.json": "H100",
               "bench_cpu.json": "CPU, 2 threads"}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(preset: str = "bplf", batch_size: int = 64, image_size: int = 48, steps: int = 5,
               warmup: int = 1, device: torch.device | str | None = None, amp: bool = False,
               **overrides) -> dict:
    """Images per second of one preset on random 8-bit images, after ``initialize``.

    ``train_images_per_s``: forward + backward + Adam step of the bpd loss;
    ``log_prob_images_per_s``: ``log_prob`` without gradients; ``sample_images_per_s``:
    ``sample`` (the inverse direction). Each is timed over ``steps`` calls after ``warmup``.
    ``amp``: the training step and ``log_prob`` under bfloat16 autocast, as
    ``TrainConfig.amp`` trains (sampling stays float32, as the package samples).
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    gen = torch.Generator().manual_seed(0)
    model = build_model(preset, image_size=image_size, **overrides).to(device)
    cfg = model.config
    u = torch.randint(0, 256, (batch_size, cfg.channels, image_size, image_size),
                      generator=gen, dtype=torch.uint8)
    x = dequantize(u, generator=gen).to(device)
    y = (torch.randint(0, cfg.num_classes, (batch_size,), generator=gen).to(device)
         if cfg.num_classes else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a PCA fitted on one small batch is rank-deficient
        model.initialize(x, y)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    scale = 1.0 / (model.num_dims * math.log(2))

    def autocast() -> torch.autocast:
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)

    def train_step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = -model.log_prob(x, y).mean() * scale
        loss.backward()
        opt.step()

    def log_prob() -> None:
        with torch.no_grad(), autocast():
            model.log_prob(x, y)

    def sample() -> None:
        model.sample(batch_size, y, temperature=0.7)

    def rate(fn) -> float:
        for _ in range(warmup):
            fn()
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        _sync(device)
        return steps * batch_size / (time.perf_counter() - t0)

    model.train()
    train = rate(train_step)
    model.eval()
    return {"params": model.num_parameters(), "device": str(device), "amp": amp,
            "train_images_per_s": round(train, 2),
            "log_prob_images_per_s": round(rate(log_prob), 2),
            "sample_images_per_s": round(rate(sample), 2)}


def read_bench(results_dir: Path | str = REPO_ROOT / "results") -> pd.DataFrame:
    """The committed throughput figures, one row per file and preset, indexed by hardware,
    batch size and preset."""
    rows = [{"hardware": hw, **r} for name, hw in BENCH_FILES.items()
            if (Path(results_dir) / name).exists()
            for r in json.loads((Path(results_dir) / name).read_text())]
    return pd.DataFrame(rows).set_index(["hardware", "batch_size", "preset"]).drop(
        columns="device")
