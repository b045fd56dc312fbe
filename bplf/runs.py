"""The run directory: what a training run writes and how it is read back.

A run directory holds ``config.json`` (the ``ModelConfig`` and ``TrainConfig`` of the run),
``checkpoint.pt`` (latest, with the optimizer state, for resuming), ``best.pt`` (lowest val
bpd), ``metrics.jsonl`` (one row per logged step), ``samples/``, and after ``export`` a
``model.pt`` (the selected weights alone). Everything that reads runs (evaluation, the
pretrained model, the experiments, the CLI) imports this module, not the trainer.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from bplf.flows.label import upgrade_config
from bplf.model import DensityModel, ModelConfig, make_model
from bplf.utils import (
    CheckpointError,
    atomic_write,
    check_fields,
    config_from_dict,
    load_state,
    load_torch,
    read_json_object,
    read_jsonl,
)

CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.jsonl"
BEST_FILE = "best.pt"



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
    #: bfloat16 autocast of the forward pass, on CUDA and on CPU (the couplings keep their
    #: log-det sums in float32). On a CPU it pays only where oneDNN has fast bf16 kernels
    #: (AMX): measured 0.68x float32 on AVX512-BF16 without AMX, 0.09x on an AVX2-only CPU
    #: (README, "Training speed on a CPU"); the trainer warns without native bf16
    amp: bool = False
    #: TF32 matrix units on CUDA: faster, but inverses are only good to ~1e-3 (settings.set_tf32)
    tf32: bool = False
    compile: bool = False
    #: stop with an error after this many consecutive non-finite losses
    max_nonfinite: int = 20
    #: Glow's hybrid objective: loss = bpd + class_loss_weight * cross-entropy of the model's
    #: class head in bits per image (Glow's scale: 0.01 there; needs ModelConfig.class_head)
    class_loss_weight: float = 0.0
    #: share of each batch whose label is replaced by the null label (label-conditioned
    #: couplings: trains the unconditional model guidance extrapolates from); the model built
    #: for the run records it (``LabelConfig.null_trained``, ``run_model``)
    label_dropout: float = 0.0
    #: a model directory (``config.json`` and weights, e.g. a shipped checkpoint) whose weights
    #: start this run instead of the data-dependent initialisation; new label inputs start at
    #: zero, so step 0 is exactly that model (``bplf.model.warm_start``). Relative paths are
    #: taken from the directory the command runs in
    init_from: str | None = None
    #: std of Gaussian noise added to every dequantised training face (model space, [-0.5,
    #: 0.5): 0.025 is TarFlow's 0.05 on [-1, 1]). The model then learns the density of *noisy*
    #: faces, p_sigma = p * N(0, sigma^2): its likelihood of a clean face is that smoothed
    #: density's (val bpd is still measured on clean faces), and sampling can take one Tweedie
    #: denoising step with this sigma (``BPLF.denoise``). 0: clean faces, as before
    noise_std: float = 0.0
    #: decay of an exponential moving average of the weights kept beside the trained ones
    #: (0: none). The average is saved in every checkpoint (resume stays exact), selected on
    #: val, exported by ``export`` and used by evaluation and sampling
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        if not self.class_loss_weight >= 0:
            raise ValueError(f"TrainConfig.class_loss_weight must be >= 0, "
                             f"not {self.class_loss_weight!r}")
        if not 0 <= self.label_dropout < 1:
            raise ValueError(f"TrainConfig.label_dropout must lie in [0, 1), "
                             f"not {self.label_dropout!r}")
        if not 0 <= self.noise_std < 0.5:
            raise ValueError(f"TrainConfig.noise_std must lie in [0, 0.5), not {self.noise_std!r}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"TrainConfig.ema_decay must lie in [0, 1), not {self.ema_decay!r}")

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        check_fields(cls, d)
        return cls(**d)


def save_run_config(out: Path, model_cfg: ModelConfig, train_cfg: TrainConfig) -> None:
    payload = {"model": model_cfg.to_dict(), "train": asdict(train_cfg)}
    atomic_write(out / CONFIG_FILE, lambda tmp: tmp.write_text(json.dumps(payload, indent=1)))


#: the fields every run ``config.json`` has held since the first version, so a saved config
#: must state them; fields added later (``implementation``, ``cooldown_steps``, ``tf32``) may be
#: missing, and their defaults are what configs written before them meant
MODEL_FIELDS_REQUIRED = ("image_size", "channels", "num_classes", "levels", "steps_per_level",
                         "hidden_channels", "coupling_depth", "kernel_size",
                         "hidden_kernel_size", "conditioner", "pca", "pca_trainable",
                         "permutation")
TRAIN_FIELDS_REQUIRED = ("preset", "batch_size", "steps", "lr", "warmup_steps", "grad_clip",
                         "seed", "flip", "init_size", "pca_fit_size", "train_limit",
                         "eval_interval", "val_size", "sample_interval", "checkpoint_interval",
                         "log_interval", "temperature", "amp", "compile", "max_nonfinite")
_CONFIG_FIX = ("restore the config.json the run wrote (a shipped one: from git), or retrain "
               "with `python -m bplf train --out DIR`")


def load_run_config(out: Path | str) -> tuple[ModelConfig, TrainConfig]:
    """The model and training configs of a run directory's ``config.json``; a file that is not
    JSON, has no ``model`` or ``train`` section, or whose fields are unknown, missing or invalid
    raises ``CheckpointError`` naming it."""
    file = Path(out) / CONFIG_FILE
    try:
        payload = read_json_object(file, _CONFIG_FIX)
    except FileNotFoundError:
        raise FileNotFoundError(f"{file}: no run configuration here") from None
    for section in ("model", "train"):
        if section not in payload:
            raise CheckpointError(f"{file}: no {section!r} section, so not a run config.json "
                                  f"written by bplf; {_CONFIG_FIX}")
    train = config_from_dict(TrainConfig, payload["train"], file, TRAIN_FIELDS_REQUIRED,
                             _CONFIG_FIX, "train")
    # a config written before LabelConfig: flat label fields, the null label trained by its run
    model = payload["model"]
    if isinstance(model, dict):
        model = upgrade_config(model, null_trained=train.label_dropout > 0)
    return (config_from_dict(ModelConfig, model, file, MODEL_FIELDS_REQUIRED, _CONFIG_FIX,
                             "model"), train)


def weights_fix(file: Path) -> str:
    """What to do about a run's weight file that cannot be loaded."""
    if file.name == CHECKPOINT_FILE:
        return (f"delete it to train from the start, or copy {BEST_FILE} over it to resume from "
                "the best checkpoint")
    if file.name == BEST_FILE:
        return f"delete it and load {CHECKPOINT_FILE} (weights='{CHECKPOINT_FILE}') instead"
    return ("re-create it with `python -m bplf export --run DIR` (a shipped one: restore it "
            "from git)")


def read_checkpoint(file: Path | str) -> dict:
    """A checkpoint file's contents (``weights_only``: plain tensors and numbers, never code);
    a truncated or foreign file raises ``CheckpointError`` naming it and what to do."""
    file = Path(file)
    return load_torch(file, "a bplf checkpoint", weights_fix(file))


#: weight files of a run directory, in the order ``load_checkpoint`` prefers them: an exported
#: model, the lowest-val-bpd checkpoint, the latest checkpoint
WEIGHT_FILES = ("model.pt", BEST_FILE, CHECKPOINT_FILE)


def weights_file(path: Path | str, weights: str | None = None) -> Path:
    """The weights of run directory ``path``: the file ``weights``, or by default the first of
    ``WEIGHT_FILES`` present. ``FileNotFoundError`` naming the directory if there is none."""
    path = Path(path)
    names = [weights] if weights else [n for n in WEIGHT_FILES if (path / n).exists()]
    if not names or not (path / names[0]).exists():
        raise FileNotFoundError(f"{path}: no weights ({weights or ', '.join(WEIGHT_FILES)})")
    return path / names[0]


def load_checkpoint(path: Path | str, device: torch.device | str | None = None,
                    weights: str | None = None) -> DensityModel:
    """Rebuild the exact model of a run directory (``config.json`` + weights), in eval mode: a
    ``BPLF``, or the peer its config names (``model.make_model``).

    ``weights``: a file in the directory; by default the first of ``WEIGHT_FILES`` present, so
    a model is selected on val as the trainer does; a run with ``ema_decay`` gives its averaged
    weights. ``model.noise_std`` is the noise the run trained on (``TrainConfig.noise_std``).
    Loaded with ``weights_only=True``: a checkpoint holds plain tensors and numbers, never code.
    """
    path = Path(path)
    model_cfg, train_cfg = load_run_config(path)
    file = weights_file(path, weights)
    saved = read_checkpoint(file)
    state = saved.get("ema", saved["model"])  # the averaged weights, where the run kept them
    model = make_model(model_cfg)
    model.noise_std = train_cfg.noise_std
    load_state(model, {k: v.float() if v.is_floating_point() else v for k, v in state.items()},
               file, path / CONFIG_FILE, "they were saved by a run with another model config: "
               "put them beside the config.json of the run that wrote them")
    return model.to(device or "cpu").eval()



def read_metrics(out: Path | str) -> list[dict]:
    """The rows of a run's ``metrics.jsonl`` (without a last row torn by a killed run)."""
    return read_jsonl(Path(out) / METRICS_FILE)
