"""The shipped pretrained models: exporting a run's selected weights, and loading them back.

A training run directory holds ``checkpoint.pt`` (latest, with the optimizer state, for
resuming) and ``best.pt`` (lowest val bpd). ``export_model`` keeps only what inference needs,
the selected weights, as ``model.pt`` beside the run's ``config.json``.

The repo ships two models, one per job. A flow trained on faces with Gaussian noise added
samples cleaner faces (after one denoising step), but its likelihood is that of noisy faces,
which costs bits on clean ones; so the **sampler** (``SAMPLER_DIR``, what ``load_pretrained()``
loads) is noise-trained, and the **likelihood model** (``LIKELIHOOD_DIR``) is trained on clean
faces, for bits per dimension and the flow's own classifier.
"""

from __future__ import annotations

from pathlib import Path

import torch

from bplf.model import BPLF
from bplf.runs import CHECKPOINT_FILE, load_checkpoint, read_checkpoint
from bplf.settings import REPO_ROOT
from bplf.utils import atomic_save, read_json_object

#: the shipped sampler: trained on noisy faces, its samples end with one denoising step (its
#: README.md gives the command that trained it)
SAMPLER_DIR = REPO_ROOT / "checkpoints" / "bplf-emotion48-sampler"
#: the shipped likelihood model: trained on clean faces (the sampler before ``SAMPLER_DIR``)
LIKELIHOOD_DIR = REPO_ROOT / "checkpoints" / "bplf-emotion48"
#: the first shipped model (no label in the couplings), which the likelihood model replaced
PREVIOUS_DIR = REPO_ROOT / "checkpoints" / "bplf-emotion48-v1"
EXPORT_FILE = "model.pt"
EVALUATION_FILE = "evaluation.json"


def export_model(run: Path | str, weights: str = "best.pt") -> Path:
    """Write ``run/model.pt``: the float32 weights of ``run/weights`` and the run state they were
    saved at (step, best val bpd), without the optimizer. Returns the path written."""
    run = Path(run)
    source = run / weights
    if not source.exists() and weights == "best.pt":
        source = run / CHECKPOINT_FILE  # a run too short to have evaluated on val
    # rebuilt from the run's config.json, so weights that do not fit it are refused here
    model = load_checkpoint(run, weights=source.name)
    dest = run / EXPORT_FILE
    # atomic: a failed write (a full disk) keeps the previous model.pt loadable
    atomic_save({"model": model.state_dict(), "state": read_checkpoint(source).get("state", {}),
                 "source": source.name}, dest)
    return dest


def load_pretrained(path: Path | str | None = None,
                    device: torch.device | str | None = None) -> BPLF:
    """The shipped sampler (or the model directory ``path``, e.g. ``LIKELIHOOD_DIR``), in eval
    mode on ``device``.

    A damaged or mismatched ``model.pt`` or ``config.json`` raises ``bplf.utils.CheckpointError``
    naming the file, the problem and what to do (see ``bplf.runs.load_checkpoint``)."""
    path = Path(path) if path is not None else SAMPLER_DIR
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"{path}: no pretrained model here (expected config.json and {EXPORT_FILE}; make one "
            "with `python -m bplf train --out DIR` then `python -m bplf export --run DIR`)")
    return load_checkpoint(path, device)


def read_evaluation(path: Path | str | None = None, name: str = EVALUATION_FILE) -> dict:
    """The ``evaluation.json`` (or another report ``name``) that ``python -m bplf evaluate``
    wrote for a model directory (default: the shipped sampler); a file that is not a JSON object
    raises ``CheckpointError`` naming it."""
    return read_json_object(Path(path or SAMPLER_DIR) / name,
                            "rewrite it with the `python -m bplf evaluate` command in the "
                            "directory's README.md")


def recommended(path: Path | str | None = None) -> dict:
    """The sampling and editing settings to use with a model, as its evaluation chose them
    (``bplf.research.evaluate.recommend``): ``samples`` (temperature, guidance) and ``edits``
    (method, guidance)."""
    report = read_evaluation(path)
    if "recommended" not in report:
        raise KeyError(f"{Path(path or SAMPLER_DIR) / EVALUATION_FILE}: no recommended "
                       "settings (written by `python -m bplf evaluate --per-emotion N`)")
    return report["recommended"]
