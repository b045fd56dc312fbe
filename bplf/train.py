"""Maximum-likelihood training of a flow on the emotion set: one loop for CPU, GPU and DDP.

The loop draws each global batch from one seeded generator shared by every process; with DDP
each rank takes its slice of it. So a run is reproducible, a resumed run continues exactly where
the checkpoint left it, and N processes see the same data as one (notebook 04 explains why).
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from torch import nn

from bplf.data import EMOTIONS, EmotionSet, load_emotion_set
from bplf.likelihood import bits_per_dim, bpd_from_log_prob, to_uint8
from bplf.model import BPLF, DensityModel, configure, make_model, warm_start
from bplf.runs import (
    BEST_FILE,
    CHECKPOINT_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    TrainConfig,
    read_checkpoint,
    save_run_config,
    weights_file,
    weights_fix,
)
from bplf.settings import cpu_has_bf16, default_device, set_tf32, setup_cpu
from bplf.utils import (
    CheckpointError,
    append_line,
    atomic_path,
    atomic_save,
    atomic_write,
    load_state,
    progress,
    read_jsonl,
    remove_stale_temps,
)


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


def run_model(train_cfg: TrainConfig, model_overrides: dict | None, image_size: int,
              channels: int = 1, num_classes: int = len(EMOTIONS)) -> DensityModel:
    """The fresh model a run trains: ``train_cfg.preset`` with ``model_overrides``, its null
    label marked trained when the run drops labels (``label_dropout`` > 0), its weights drawn
    from the run's seed (they are part of the run's identity)."""
    config = configure(train_cfg.preset, image_size=image_size, channels=channels,
                       num_classes=num_classes, **(model_overrides or {}))
    if train_cfg.label_dropout > 0:
        if not config.label.couplings:
            raise ValueError("label_dropout > 0 needs label-conditioned couplings "
                             "(label.couplings: a null label): pass the model override "
                             "label=LabelConfig(couplings=True)")
        config = replace(config, label=replace(config.label, null_trained=True))
    torch.manual_seed(train_cfg.seed)
    return make_model(config)


def _distributed() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class LogProb(nn.Module):
    """``forward(x, y) = model.log_prob(x, y)``: the module DDP wraps, so gradients are synced.
    With ``logits``, ``(log_prob, class-head logits)`` from one pass."""

    def __init__(self, model: BPLF, logits: bool = False):
        super().__init__()
        self.model = model
        self.logits = logits

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None):
        if self.logits:
            return self.model.log_prob_and_logits(x, y)
        return self.model.log_prob(x, y)


def training_loss(log_p: torch.Tensor, dims: int, logits: torch.Tensor | None = None,
                  labels: torch.Tensor | None = None,
                  class_loss_weight: float = 0.0) -> torch.Tensor:
    """Mean bits per dimension, plus (Glow's hybrid objective) ``class_loss_weight`` times the
    class head's cross-entropy in bits per image. As in Glow, the two are on different scales:
    the likelihood term is per dimension (D = 2304), the class term per image, so a weight of
    0.01 weighs the label like ~23 bits of the 2304-dimensional image likelihood."""
    loss = bpd_from_log_prob(log_p.float(), dims).mean()
    if class_loss_weight > 0:
        ce = nn.functional.cross_entropy(logits.float(), labels)
        loss = loss + class_loss_weight * ce / math.log(2)
    return loss


class Trainer:
    """Trains ``model`` (built for the run: ``run_model``) on the emotion set's train split,
    selecting on val; the model's image size must be the data's.

    ``out`` receives ``config.json``, ``checkpoint.pt`` (latest, atomic), ``best.pt`` (lowest
    val bpd), ``metrics.jsonl`` and ``samples/``.
    """

    def __init__(self, model: DensityModel, train_cfg: TrainConfig, out: Path | str,
                 device: torch.device | str | None = None,
                 emotion_set: EmotionSet | None = None):
        self.cfg = train_cfg
        self.out = Path(out)
        self.rank, self.world = _distributed()
        self.device = torch.device(device) if device is not None else default_device()
        if self.device.type == "cpu":
            setup_cpu()
            if self.cfg.amp and not cpu_has_bf16():
                warnings.warn("TrainConfig.amp: this CPU has no native bfloat16 (AVX512-BF16, "
                              "AMX or Arm BF16), so bf16 autocast runs slower than float32; "
                              "set amp to false", stacklevel=2)
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

        #: (C, H, W) of the faces, as the data has them
        self.image_shape = tuple(self.train_x.shape[1:])
        self.model = model
        if (model.config.channels, model.config.image_size, model.config.image_size) != \
                self.image_shape:
            raise ValueError(f"the model is built for {model.config.channels} x "
                             f"{model.config.image_size}^2 images, the data has "
                             f"{self.image_shape}: build it with run_model")
        label = self.model.config.label
        if self.cfg.class_loss_weight > 0 and not label.class_head:
            raise ValueError("class_loss_weight > 0 needs a model with a class head: pass the "
                             "model override label=LabelConfig(class_head=True)")
        if label.null_trained != (self.cfg.label_dropout > 0):
            raise ValueError(f"the model's label.null_trained ({label.null_trained}) must say "
                             f"whether this run trains its null label (label_dropout "
                             f"{self.cfg.label_dropout}): build it with run_model")
        self.model.to(self.device)
        self.model.noise_std = self.cfg.noise_std
        #: the averaged weights (``ema_decay``): a copy of the model, updated after every step
        self.ema = copy.deepcopy(self.model).eval() if self.cfg.ema_decay > 0 else None
        self.state = RunState()
        self.generator = torch.Generator(device="cpu").manual_seed(self.cfg.seed)
        self._dropped: torch.Tensor | None = None  # this batch's label-dropout mask
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        self.net: nn.Module = LogProb(self.model, logits=self.cfg.class_loss_weight > 0)

    # -- data -------------------------------------------------------------------------------
    def _global_batch(self, n: int, shard: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw a global batch (the same on every rank), dequantised; with ``shard`` return only
        this rank's slice of it."""
        idx = torch.randint(len(self.train_y), (n,), generator=self.generator)
        noise = torch.rand((n, *self.image_shape), generator=self.generator)
        flips = torch.rand((n,), generator=self.generator) < 0.5
        # drawn only when used, so runs without label dropout keep their batches
        drop = (torch.rand((n,), generator=self.generator) < self.cfg.label_dropout
                if shard and self.cfg.label_dropout > 0 else None)
        gauss = (self.cfg.noise_std * torch.randn((n, *self.image_shape), generator=self.generator)
                 if shard and self.cfg.noise_std > 0 else None)
        if shard:
            part = slice(self.rank * n // self.world, (self.rank + 1) * n // self.world)
            idx, noise, flips = idx[part], noise[part], flips[part]
            drop = drop[part] if drop is not None else None
            gauss = gauss[part] if gauss is not None else None
        self._dropped = drop.to(self.device) if drop is not None else None
        idx, noise = idx.to(self.device), noise.to(self.device)
        u = self.train_x[idx].float()
        if self.cfg.flip:
            u = torch.where(flips.to(self.device)[:, None, None, None], u.flip(-1), u)
        x = (u + noise) / 256.0 - 0.5  # the dequantisation of bplf.likelihood.dequantize
        if gauss is not None:  # noise augmentation: the density of noisy faces (noise_std)
            x = x + gauss.to(self.device)
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
        if self.ema is not None:
            payload["ema"] = self.ema.state_dict()
        atomic_save(payload, self.out / name)  # a failed write keeps the previous file

    def resume(self) -> bool:
        """Continue from ``out/checkpoint.pt`` if there is one; returns whether it did. A file
        that cannot be resumed from raises ``CheckpointError`` naming it and what to do."""
        path = self.out / CHECKPOINT_FILE
        if not path.exists():
            return False
        ckpt = read_checkpoint(path)
        missing = [k for k in ("optimizer", "generator", "torch_rng", "state") if k not in ckpt]
        if missing:
            raise CheckpointError(f"{path}: not a training checkpoint (no {', '.join(missing)}; "
                                  f"an exported model.pt holds weights only); "
                                  f"{weights_fix(path)}")
        load_state(self.model, ckpt["model"], path, "the model this Trainer builds",
                   f"resume with the model options of {self.out / CONFIG_FILE}, or train into "
                   "a new directory")
        if self.ema is not None:
            if "ema" not in ckpt:
                raise CheckpointError(f"{path}: no averaged weights, but this run keeps them "
                                      f"(ema_decay {self.cfg.ema_decay}); resume with the "
                                      f"config of {self.out / CONFIG_FILE}")
            load_state(self.ema, ckpt["ema"], path, "the model this Trainer builds",
                       "resume with the model options it was saved with")
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.generator.set_state(ckpt["generator"])
            torch.set_rng_state(ckpt["torch_rng"])
            self.state = RunState(**ckpt["state"])
        except (RuntimeError, TypeError, ValueError, KeyError) as err:
            raise CheckpointError(f"{path}: damaged training state ({err}); "
                                  f"{weights_fix(path)}") from None
        # rows logged after this checkpoint belong to the killed run's lost steps: drop them
        # (and a last row torn by the kill, which read_jsonl skips)
        metrics = self.out / METRICS_FILE
        if metrics.exists() and self.rank == 0:
            kept = [r for r in read_jsonl(metrics) if r.get("step", 0) <= self.state.step]
            atomic_write(metrics, lambda tmp: tmp.write_text(
                "".join(json.dumps(r) + "\n" for r in kept)))
        return True

    def _log(self, row: dict) -> None:
        if self.rank == 0:
            append_line(self.out / METRICS_FILE, json.dumps(row))  # no torn line on failure

    # -- the loop -----------------------------------------------------------------------------
    def initialize(self) -> None:
        """Data-dependent initialisation (PCA fit, ActNorm) on a batch identical on every rank."""
        x, y = self._global_batch(self.cfg.init_size, shard=False)
        # drawn even without a PCA layer (the model then ignores it), so that every model
        # config of an ablation trains on the same batches for a given seed
        pca_x, _ = self._global_batch(min(self.cfg.pca_fit_size, len(self.train_y)), shard=False)
        with torch.no_grad():
            self.model.initialize(x, y, pca_x=pca_x)

    def warm_start(self) -> list[str]:
        """Load ``init_from``'s weights into the model (``bplf.model.warm_start``); returns the
        tensors that were not copied whole. Weights that do not fit raise ``CheckpointError``
        naming the file."""
        file = weights_file(self.cfg.init_from)
        try:
            return warm_start(self.model, read_checkpoint(file)["model"])
        except ValueError as err:
            raise CheckpointError(f"{file}: cannot start this run from it ({err}); give "
                                  "init_from a model of the same preset and size") from None

    @torch.no_grad()
    def _update_ema(self) -> None:
        """ema <- decay * ema + (1 - decay) * weights; buffers (ActNorm and PCA statistics,
        fixed after initialisation) are copied."""
        for avg, p in zip(self.ema.parameters(), self.model.parameters(), strict=True):
            avg.lerp_(p.detach(), 1 - self.cfg.ema_decay)
        for avg, b in zip(self.ema.buffers(), self.model.buffers(), strict=True):
            avg.copy_(b)

    @property
    def sampler(self) -> DensityModel:
        """The weights that are evaluated, sampled and exported: the average where kept."""
        return self.ema if self.ema is not None else self.model

    def evaluate(self) -> float:
        """Val bpd of the sampled weights on clean faces (also when training on noisy ones)."""
        return bits_per_dim(self.sampler, self.val_x, self.val_y, seed=self.cfg.seed,
                            device=self.device)

    def fit(self, resume: bool = False) -> RunState:
        self.out.mkdir(parents=True, exist_ok=True)
        if self.rank == 0:  # left by a process killed mid-write
            remove_stale_temps(self.out, (CONFIG_FILE, CHECKPOINT_FILE, BEST_FILE, METRICS_FILE))
        if not (resume and self.resume()):
            if self.cfg.init_from:
                self.warm_start()
            else:
                self.initialize()
            if self.ema is not None:  # the average starts at the initial weights
                self.ema.load_state_dict(self.model.state_dict())
            if self.rank == 0:
                (self.out / METRICS_FILE).unlink(missing_ok=True)
        save_run_config(self.out, self.model.config, self.cfg)
        if self.world > 1 and not isinstance(self.net, nn.parallel.DistributedDataParallel):
            self.net = nn.parallel.DistributedDataParallel(
                self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        net = self.net
        step_fn = torch.compile(net) if self.cfg.compile else net
        net.train()
        dims = math.prod(self.image_shape)
        window, window_images, t_window = [], 0, time.perf_counter()
        bar = progress(total=self.cfg.steps, initial=self.state.step, desc="train",
                       **({} if self.rank == 0 else {"disable": True}))
        while self.state.step < self.cfg.steps:
            t0 = time.perf_counter()
            for group in self.optimizer.param_groups:
                group["lr"] = lr_at(self.state.step, self.cfg)
            x, y = self._global_batch(self.cfg.batch_size)
            y_model = (y if self._dropped is None else
                       torch.where(self._dropped, torch.full_like(y, self.model.null_label), y))
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.amp):
                out = step_fn(x, y_model)
            log_p, logits = out if isinstance(out, tuple) else (out, None)
            loss = training_loss(log_p, dims, logits, y, self.cfg.class_loss_weight)
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
            if self.ema is not None:
                self._update_ema()
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
                        self.save(BEST_FILE)
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
        model = self.sampler
        was_training = model.training
        model.eval()
        gen_state = torch.get_rng_state()
        torch.manual_seed(self.cfg.seed)  # same noise at every step: the grid shows progress
        y = torch.arange(self.num_classes, device=self.device).repeat_interleave(per_emotion)
        x = model.sample(len(y), y=y, temperature=self.cfg.temperature)
        torch.set_rng_state(gen_state)
        model.train(was_training)
        u = to_uint8(x).cpu().numpy()
        _, h, w = self.image_shape
        grid = u[:, 0].reshape(self.num_classes, per_emotion, h, w).transpose(0, 2, 1, 3)
        path = self.out / "samples" / f"step_{self.state.step:07d}.png"
        path.parent.mkdir(exist_ok=True)
        with atomic_path(path) as tmp:
            Image.fromarray(grid.reshape(self.num_classes * h, per_emotion * w)).save(
                tmp, format="PNG")
        return path


def train(train_cfg: TrainConfig, out: Path | str, model_overrides: dict | None = None,
          resume: bool = False, device: torch.device | str | None = None,
          emotion_set: EmotionSet | None = None) -> Trainer:
    """Train one run (the CLI's ``train`` command and notebook 04 call this): the model of
    ``train_cfg.preset`` with ``model_overrides`` (``run_model``), at the data's image size."""
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        if torch.cuda.is_available():
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(device)
    try:
        es = emotion_set if emotion_set is not None else load_emotion_set()
        model = run_model(train_cfg, model_overrides, es.images.shape[-1])
        trainer = Trainer(model, train_cfg, out, device, es)
        trainer.fit(resume=resume)
    finally:
        if distributed and dist.is_initialized():
            dist.destroy_process_group()
    return trainer
