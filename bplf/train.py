"""Maximum-likelihood training of a flow on the emotion set: one loop for CPU, GPU and DDP.

The loop draws each global batch from one seeded generator shared by every process; with DDP
each rank takes its slice of it. So a run is reproducible, a resumed run continues exactly where
the checkpoint left it, and N processes see the same data as one (notebook 04 explains why).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from bplf.data import EMOTIONS, load_emotion_set
from bplf.likelihood import bits_per_dim, bpd_from_log_prob, to_uint8
from bplf.model import BPLF, DensityModel, ModelConfig, build_model, make_model
from bplf.settings import default_device, set_tf32, setup_cpu
from bplf.utils import atomic_path, atomic_write, check_fields, progress

CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.jsonl"


@dataclass
class TrainConfig:
    """Everything that decides a training run except the model (saved beside every checkpoint)."""

    preset: str = "bplf"
    batch_size: int = 64
    steps: int = 20_000
    lr: float = 1e-3
    warmup_steps: int = 500
    #: decay the lr linearly to zero over the last this many steps (0: constant to the end)
    cooldown_steps: int = 0
    grad_clip: float = 50.0
    seed: int = 0
    flip: bool = True
    #: faces used for the data-dependent initialisation of ActNorm
    init_size: int = 1024
    #: faces the PCA layer is fitted on (a global or zca PCA needs more than D = 2304)
    pca_fit_size: int = 8192
    #: train on at most this many training faces (None: all); quick mode uses a few hundred
    train_limit: int | None = None
    eval_interval: int = 500
    #: validation faces used for the periodic val bpd (a fixed subset, fixed noise)
    val_size: int = 2000
    sample_interval: int = 2000
    checkpoint_interval: int = 1000
    log_interval: int = 50
    temperature: float = 0.7
    amp: bool = False
    #: TF32 matrix units on CUDA: faster, but inverses are only good to ~1e-3 (settings.set_tf32)
    tf32: bool = False
    compile: bool = False
    #: stop with an error after this many consecutive non-finite losses
    max_nonfinite: int = 20

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        check_fields(cls, d)
        return cls(**d)


@dataclass
class RunState:
    """What a checkpoint needs besides the weights to continue a run exactly."""

    step: int = 0
    wall: float = 0.0
    nonfinite: int = 0
    skipped_total: int = 0
    best_val_bpd: float = math.inf


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up (flows diverge early without one), constant, then an optional linear
    cool-down to zero over the last ``cooldown_steps`` steps."""
    warm = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
    cool = min(1.0, (cfg.steps - step) / cfg.cooldown_steps) if cfg.cooldown_steps else 1.0
    return cfg.lr * warm * cool


def _distributed() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def save_run_config(out: Path, model_cfg: ModelConfig, train_cfg: TrainConfig) -> None:
    payload = {"model": model_cfg.to_dict(), "train": asdict(train_cfg)}
    atomic_write(out / CONFIG_FILE, lambda tmp: tmp.write_text(json.dumps(payload, indent=1)))


def load_run_config(out: Path) -> tuple[ModelConfig, TrainConfig]:
    try:
        payload = json.loads((Path(out) / CONFIG_FILE).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{Path(out) / CONFIG_FILE}: no run configuration here") from None
    return ModelConfig.from_dict(payload["model"]), TrainConfig.from_dict(payload["train"])


def read_checkpoint(file: Path) -> dict:
    """A checkpoint file's contents (``weights_only``: plain tensors and numbers, never code);
    a truncated or foreign file raises an error that names it."""
    try:
        ckpt = torch.load(file, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"{file}: no such checkpoint") from None
    except Exception as err:
        raise ValueError(f"{file}: not a bplf checkpoint ({err})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ValueError(f"{file}: not a bplf checkpoint (no model weights)")
    return ckpt


#: weight files of a run directory, in the order ``load_checkpoint`` prefers them: an exported
#: model, the lowest-val-bpd checkpoint, the latest checkpoint
WEIGHT_FILES = ("model.pt", "best.pt", CHECKPOINT_FILE)


def load_checkpoint(path: Path | str, device: torch.device | str | None = None,
                    weights: str | None = None) -> DensityModel:
    """Rebuild the exact model of a run directory (``config.json`` + weights), in eval mode: a
    ``BPLF``, or the peer its config names (``model.make_model``).

    ``weights``: a file in the directory; by default the first of ``WEIGHT_FILES`` present, so
    a model is selected on val as the trainer does. Loaded with ``weights_only=True``: a
    checkpoint holds plain tensors and numbers, never code.
    """
    path = Path(path)
    model_cfg, _ = load_run_config(path)
    names = [weights] if weights else [n for n in WEIGHT_FILES if (path / n).exists()]
    if not names or not (path / names[0]).exists():
        raise FileNotFoundError(f"{path}: no weights ({weights or ', '.join(WEIGHT_FILES)})")
    file = path / names[0]
    state = read_checkpoint(file)["model"]
    model = make_model(model_cfg)
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in state.items()})
    except RuntimeError as err:
        raise ValueError(f"{file}: weights do not match {path / CONFIG_FILE} ({err})") from None
    return model.to(device or "cpu").eval()


class LogProb(nn.Module):
    """``forward(x, y) = model.log_prob(x, y)``: the module DDP wraps, so gradients are synced."""

    def __init__(self, model: BPLF):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.log_prob(x, y)


class Trainer:
    """Trains ``model`` on the emotion set's train split, selecting on val.

    ``out`` receives ``config.json``, ``checkpoint.pt`` (latest, atomic), ``best.pt`` (lowest
    val bpd), ``metrics.jsonl`` and ``samples/``.
    """

    def __init__(self, train_cfg: TrainConfig, out: Path | str, model_overrides: dict | None = None,
                 device: torch.device | str | None = None, emotion_set=None):
        self.cfg = train_cfg
        self.out = Path(out)
        self.rank, self.world = _distributed()
        self.device = torch.device(device) if device is not None else default_device()
        if self.device.type == "cpu":
            setup_cpu()
        else:
            set_tf32(self.cfg.tf32)
        if self.cfg.batch_size % self.world:
            raise ValueError(f"batch_size {self.cfg.batch_size} is not divisible by the "
                             f"{self.world} processes")
        es = emotion_set if emotion_set is not None else load_emotion_set()
        self.num_classes = len(EMOTIONS)
        train = es.select(split="train")
        if self.cfg.train_limit:
            train = train.subsample(self.cfg.train_limit, seed=self.cfg.seed)
        val = es.select(split="val").subsample(self.cfg.val_size, seed=self.cfg.seed)
        if len(train) == 0 or len(val) == 0:
            raise ValueError("the emotion set has no train or no val faces for this selection")
        # The whole set is small (~85 MB of uint8): on a GPU it lives on the device and noise
        # and flips are drawn there, so no step waits for a host-to-device copy.
        self.train_x = torch.from_numpy(train.images).unsqueeze(1).to(self.device)
        self.train_y = torch.from_numpy(train.labels).to(self.device)
        self.val_x, self.val_y = val.images, torch.from_numpy(val.labels)

        torch.manual_seed(self.cfg.seed)  # the initial weights are part of the run's identity
        self.model = build_model(self.cfg.preset, image_size=48, channels=1,
                                 num_classes=self.num_classes, **(model_overrides or {}))
        self.model.to(self.device)
        self.state = RunState()
        self.generator = torch.Generator(device="cpu").manual_seed(self.cfg.seed)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        self.net: nn.Module = LogProb(self.model)

    # -- data -------------------------------------------------------------------------------
    def _global_batch(self, n: int, shard: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw a global batch (the same on every rank), dequantised; with ``shard`` return only
        this rank's slice of it."""
        idx = torch.randint(len(self.train_y), (n,), generator=self.generator)
        noise = torch.rand((n, 1, 48, 48), generator=self.generator)
        flips = torch.rand((n,), generator=self.generator) < 0.5
        if shard:
            part = slice(self.rank * n // self.world, (self.rank + 1) * n // self.world)
            idx, noise, flips = idx[part], noise[part], flips[part]
        idx, noise = idx.to(self.device), noise.to(self.device)
        u = self.train_x[idx].float()
        if self.cfg.flip:
            u = torch.where(flips.to(self.device)[:, None, None, None], u.flip(-1), u)
        x = (u + noise) / 256.0 - 0.5  # the dequantisation of bplf.likelihood.dequantize
        return x, self.train_y[idx]

    # -- checkpoints --------------------------------------------------------------------------
    def save(self, name: str = CHECKPOINT_FILE) -> None:
        if self.rank != 0:
            return
        payload = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "state": asdict(self.state),
        }
        with atomic_path(self.out / name) as tmp:
            torch.save(payload, tmp)

    def resume(self) -> bool:
        """Continue from ``out/checkpoint.pt`` if there is one; returns whether it did."""
        path = self.out / CHECKPOINT_FILE
        if not path.exists():
            return False
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.generator.set_state(ckpt["generator"])
        torch.set_rng_state(ckpt["torch_rng"])
        self.state = RunState(**ckpt["state"])
        # rows logged after this checkpoint belong to the killed run's lost steps: drop them
        metrics = self.out / METRICS_FILE
        if metrics.exists() and self.rank == 0:
            rows = [json.loads(line) for line in metrics.read_text().splitlines() if line]
            kept = [r for r in rows if r["step"] <= self.state.step]
            atomic_write(metrics, lambda tmp: tmp.write_text(
                "".join(json.dumps(r) + "\n" for r in kept)))
        return True

    def _log(self, row: dict) -> None:
        if self.rank == 0:
            with open(self.out / METRICS_FILE, "a") as f:
                f.write(json.dumps(row) + "\n")

    # -- the loop -----------------------------------------------------------------------------
    def initialize(self) -> None:
        """Data-dependent initialisation (PCA fit, ActNorm) on a batch identical on every rank."""
        x, y = self._global_batch(self.cfg.init_size, shard=False)
        # drawn even without a PCA layer (the model then ignores it), so that every model
        # config of an ablation trains on the same batches for a given seed
        pca_x, _ = self._global_batch(min(self.cfg.pca_fit_size, len(self.train_y)), shard=False)
        with torch.no_grad():
            self.model.initialize(x, y, pca_x=pca_x)

    def evaluate(self) -> float:
        return bits_per_dim(self.model, self.val_x, self.val_y, seed=self.cfg.seed,
                            device=self.device)

    def fit(self, resume: bool = False) -> RunState:
        self.out.mkdir(parents=True, exist_ok=True)
        if not (resume and self.resume()):
            self.initialize()
            if self.rank == 0:
                (self.out / METRICS_FILE).unlink(missing_ok=True)
        save_run_config(self.out, self.model.config, self.cfg)
        if self.world > 1 and not isinstance(self.net, nn.parallel.DistributedDataParallel):
            self.net = nn.parallel.DistributedDataParallel(
                self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        net = self.net
        step_fn = torch.compile(net) if self.cfg.compile else net
        net.train()
        dims = 48 * 48
        window, window_images, t_window = [], 0, time.perf_counter()
        bar = progress(total=self.cfg.steps, initial=self.state.step, desc="train",
                       **({} if self.rank == 0 else {"disable": True}))
        while self.state.step < self.cfg.steps:
            t0 = time.perf_counter()
            for group in self.optimizer.param_groups:
                group["lr"] = lr_at(self.state.step, self.cfg)
            x, y = self._global_batch(self.cfg.batch_size)
            with torch.autocast(self.device.type, dtype=torch.bfloat16,
                                enabled=self.cfg.amp and self.device.type == "cuda"):
                log_p = step_fn(x, y)
            loss = bpd_from_log_prob(log_p.float(), dims).mean()
            self.optimizer.zero_grad(set_to_none=True)
            if not self._all_finite(loss):
                # NaN/inf: skip the step (never apply its gradient), count it, stop if it persists
                self.state.nonfinite += 1
                self.state.skipped_total += 1
                if self.state.nonfinite >= self.cfg.max_nonfinite:
                    raise FloatingPointError(
                        f"{self.state.nonfinite} consecutive non-finite losses at step "
                        f"{self.state.step}; lower lr ({self.cfg.lr}) or raise warmup_steps")
                continue
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), self.cfg.grad_clip)
            self.optimizer.step()
            self.state.nonfinite = 0
            self.state.step += 1
            self.state.wall += time.perf_counter() - t0
            window.append(loss.item())
            window_images += self.cfg.batch_size
            bar.update(1)
            bar.set_postfix(bpd=f"{window[-1]:.3f}")
            step = self.state.step
            evaluate = step % self.cfg.eval_interval == 0 or step == self.cfg.steps
            if step % self.cfg.log_interval == 0 or evaluate:
                now = time.perf_counter()
                row = {"step": step, "wall": round(self.state.wall, 3),
                       "train_bpd": float(np.mean(window)), "lr": lr_at(step - 1, self.cfg),
                       "images_per_s": window_images / max(now - t_window, 1e-9),
                       "skipped": self.state.skipped_total}
                window, window_images = [], 0
                if evaluate:
                    row["val_bpd"] = self.evaluate()
                    net.train()
                    if row["val_bpd"] < self.state.best_val_bpd:
                        self.state.best_val_bpd = row["val_bpd"]
                        self.save("best.pt")
                self._log(row)
                t_window = time.perf_counter()
            if step % self.cfg.sample_interval == 0 or step == self.cfg.steps:
                self.save_samples()
            if step % self.cfg.checkpoint_interval == 0 or step == self.cfg.steps:
                self.save()
        bar.close()
        return self.state

    def _all_finite(self, loss: torch.Tensor) -> bool:
        """Whether the loss is finite on every rank (all ranks must skip a step together)."""
        bad = (~torch.isfinite(loss.detach())).float()
        if self.world > 1:
            dist.all_reduce(bad)
        return bool(bad.item() == 0)

    @torch.no_grad()
    def save_samples(self, per_emotion: int = 8) -> Path | None:
        """A PNG grid: one row per emotion, sampled at the configured temperature."""
        if self.rank != 0:
            return None
        from PIL import Image

        model = self.model
        was_training = model.training
        model.eval()
        gen_state = torch.get_rng_state()
        torch.manual_seed(self.cfg.seed)  # same noise at every step: the grid shows progress
        y = torch.arange(self.num_classes, device=self.device).repeat_interleave(per_emotion)
        x = model.sample(len(y), y=y, temperature=self.cfg.temperature)
        torch.set_rng_state(gen_state)
        model.train(was_training)
        u = to_uint8(x).cpu().numpy()
        grid = u.reshape(self.num_classes, per_emotion, 48, 48).transpose(0, 2, 1, 3)
        path = self.out / "samples" / f"step_{self.state.step:07d}.png"
        path.parent.mkdir(exist_ok=True)
        with atomic_path(path) as tmp:
            Image.fromarray(grid.reshape(self.num_classes * 48, per_emotion * 48)).save(tmp,
                                                                                       format="PNG")
        return path


def train(train_cfg: TrainConfig, out: Path | str, model_overrides: dict | None = None,
          resume: bool = False, device: torch.device | str | None = None,
          emotion_set=None) -> Trainer:
    """Train one run (the CLI's ``train`` command and notebook 04 call this)."""
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        if torch.cuda.is_available():
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(device)
    try:
        trainer = Trainer(train_cfg, out, model_overrides, device, emotion_set)
        trainer.fit(resume=resume)
    finally:
        if distributed and dist.is_initialized():
            dist.destroy_process_group()
    return trainer


def read_metrics(out: Path | str) -> list[dict]:
    """The rows of a run's ``metrics.jsonl``."""
    path = Path(out) / METRICS_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line]
