"""Shared fixtures and tiny configs: the device parametrisation, face-like test images, parameter
perturbation, a synthetic emotion set, the conditioning grid trained and scored at the "quick"
budget; the small model and training configs the tests share
(``from conftest import TINY_MODEL``), one name per meaning."""

from __future__ import annotations

import pytest
import torch

from bplf.checks import jacobian_logdet
from bplf.data import build_emotion_set, load_emotion_set
from bplf.editing import latent_means
from bplf.flows import LabelConfig
from bplf.likelihood import dequantize
from bplf.model import build_model
from bplf.research.conditioning import FidelityConfig
from bplf.research.experiments import run_grid
from bplf.research.scoring import evaluate_grid

#: a tiny 8x8 model, one flow step per level (``build_model``/``ModelConfig`` keywords)
TINY_MODEL = dict(image_size=8, levels=2, steps_per_level=1, hidden_channels=8)
#: the same with two flow steps per level
TINY_MODEL_2STEPS = dict(image_size=8, levels=2, steps_per_level=2, hidden_channels=8)
#: the model overrides of a tiny training run (the image size comes from the data)
TINY_RUN_MODEL = {"levels": 2, "steps_per_level": 1, "hidden_channels": 8, "pca": "patch"}
#: a training run of a few steps on the synthetic set (``TrainConfig`` keywords), evaluated
#: every 4 steps
QUICK_TRAIN = dict(batch_size=8, init_size=32, val_size=32, eval_interval=4, log_interval=1,
                   sample_interval=1000, checkpoint_interval=3, warmup_steps=2, train_limit=200)


@pytest.fixture(params=["cpu", "cuda"])
def device(request) -> torch.device:
    """Every device-parametrised test runs on the CPU, and on CUDA when there is one."""
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    return torch.device(request.param)


def draw_faces(n: int, size: int = 8, channels: int = 1, seed: int = 0) -> torch.Tensor:
    """Procedural face-like images in [-0.5, 0.5): a lit head ellipse with two eyes and a mouth
    of random position, size and expression on a gradient background, plus dequantisation-like
    noise. Smooth and strongly correlated, unlike white noise."""
    g = torch.Generator().manual_seed(seed)

    def r(lo: float, hi: float) -> torch.Tensor:
        return (lo + (hi - lo) * torch.rand(n, 1, 1, generator=g))

    t = (torch.arange(size) + 0.5) / size
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    cx, cy = r(0.4, 0.6), r(0.45, 0.55)
    head = torch.sigmoid((1 - ((xx - cx) / r(0.3, 0.4)) ** 2 - ((yy - cy) / r(0.38, 0.48)) ** 2)
                         * 8)
    img = 0.15 * (xx * r(-1, 1) + yy * r(-1, 1)) + head * r(0.4, 0.8)
    for side in (-1, 1):
        ex, ey = cx + side * r(0.12, 0.18), cy - r(0.08, 0.15)
        img = img - r(0.2, 0.4) * torch.exp(-((xx - ex) ** 2 + (yy - ey) ** 2) / 0.004)
    smile = r(-0.15, 0.15)
    my = cy + r(0.15, 0.22) - smile * ((xx - cx) / 0.2) ** 2
    mouth = torch.exp(-((yy - my) ** 2) / 0.002) * (((xx - cx) / 0.2).abs() < 1)
    img = img - r(0.2, 0.4) * mouth
    img = img[:, None].expand(n, channels, size, size)
    img = img * (1 + 0.1 * torch.randn(n, channels, 1, 1, generator=g))
    img = img + 0.01 * torch.randn(img.shape, generator=g)
    lo = img.amin(dim=(1, 2, 3), keepdim=True)
    hi = img.amax(dim=(1, 2, 3), keepdim=True)
    return ((img - lo) / (hi - lo + 1e-6) * 0.98 - 0.49).float()


@pytest.fixture
def faces():
    """``faces(n, size=8, channels=1, seed=0)``: procedural face-like images."""
    return draw_faces


@torch.no_grad()
def perturb_parameters(module: torch.nn.Module, scale: float = 0.05, seed: int = 0) -> None:
    """Add ``scale * randn`` to every parameter, so tests do not run at the zero init."""
    g = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype).to(p.device))


@pytest.fixture
def perturb():
    """``perturb(module, scale=0.05, seed=0)``: noise on every parameter."""
    return perturb_parameters


@pytest.fixture
def autograd_logdet():
    """``autograd_logdet(fn, x)``: log|det| of the Jacobian of ``fn`` per sample of ``x``."""
    return jacobian_logdet


def assert_logdet_close(logdet: torch.Tensor, reference: torch.Tensor, rtol: float = 1e-4):
    err = (logdet - reference).abs() / reference.abs().clamp_min(1.0)
    assert float(err.max()) < rtol, (logdet, reference)


@pytest.fixture
def logdet_close():
    """``logdet_close(logdet, reference, rtol=1e-4)``: relative error (floored at 1) below rtol."""
    return assert_logdet_close


@pytest.fixture(scope="module")
def synthetic_es(tmp_path_factory):
    """The procedural emotion set, built in a folder of its own (never the real data)."""
    root = tmp_path_factory.mktemp("emotion")
    with pytest.warns(UserWarning, match="SYNTHETIC"):
        build_emotion_set(root / "raw", root / "processed")
    return load_emotion_set(root / "raw", root / "processed", build=False)


@pytest.fixture(scope="module")
def small_model(synthetic_es):
    """A small 48x48 BPLF, initialised on the synthetic faces, with a perturbed
    class-conditional prior (so emotions differ, as after training)."""
    torch.manual_seed(0)
    m = build_model("bplf", levels=3, steps_per_level=1, hidden_channels=8)
    x = dequantize(synthetic_es.select(split="train").subsample(600).images)
    m.initialize(x[:256], pca_x=x)
    with torch.no_grad():
        for p in m.top_prior.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return m.eval()


@pytest.fixture(scope="module")
def small_means(small_model, synthetic_es):
    """Per-emotion latent means of ``small_model`` (40 training faces each)."""
    return latent_means(small_model, synthetic_es, per_emotion=40)


@pytest.fixture(scope="module")
def guided_model(synthetic_es):
    """A small BPLF with label-conditioned couplings (a null label to guide from), its
    couplings' linear branches perturbed so the label changes the faces."""
    torch.manual_seed(0)
    m = build_model("bplf", levels=2, steps_per_level=1, hidden_channels=8,
                    label=LabelConfig(splits=True, couplings=True))
    x = dequantize(synthetic_es.select(split="train").subsample(300).images)
    m.initialize(x[:128], torch.zeros(128, dtype=torch.long), pca_x=x)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("linear_branch.weight"):
                p.add_(0.05 * torch.randn_like(p))
    return m.eval()


def _person_report() -> dict:
    """A made-up ``python -m bplf evaluate`` report in the shape the face metrics give: real
    faces, the coupling rule breaking faces, the prior rule keeping them until the samples
    become alike, and edits that keep or lose the face and the person."""
    from bplf.guidance import Guidance

    def sample(t, g, acc, face, joint, pair):
        return {"generator": "m", "temperature": t, "guidance": g.label(),
                "guidance_config": g.to_dict(), "accuracy": acc, "fd": 5.0, "face_rate": face,
                "joint_rate": joint, "pair_ssim": pair, "precision": 0.8, "recall": 0.6}

    def edit(method, g, a, joint, face, ssim):
        return {"method": method, "guidance": g.label(), "guidance_config": g.to_dict(),
                "intensity": a, "hit_rate": joint + 0.05, "face_rate": face,
                "joint_rate": joint, "ssim": ssim, "rmse": 40.0, "keeps_person": ssim >= 0.6}

    G = Guidance
    return {"checkpoint": "m", "reference": {"same_person": {"ssim": 0.6, "rmse": 37.0},
                                             "edit_inputs": {"n": 10, "face_rate": 0.6}},
            "fidelity": [
                {"generator": "real faces (ceiling)", "temperature": None, "guidance": None,
                 "accuracy": 0.6, "fd": 0.05, "face_rate": 0.6, "joint_rate": 0.36,
                 "pair_ssim": 0.07, "precision": 0.9, "recall": 0.9},
                sample(0.7, G(), 0.25, 0.85, 0.21, 0.2),
                sample(0.7, G(coupling=8), 0.35, 0.18, 0.06, 0.1),  # blotches
                sample(0.7, G(prior=3), 0.5, 0.98, 0.49, 0.45),  # faces, but alike
                sample(1.0, G(), 0.2, 0.43, 0.08, 0.08),
                sample(1.0, G(prior=2), 0.44, 0.78, 0.34, 0.23),
                sample(1.0, G(prior=4), 0.5, 0.93, 0.4, 0.28),
                {"generator": "untrained (floor)", "temperature": 0.7, "guidance": "unguided",
                 "accuracy": 0.14, "fd": 13.0, "face_rate": 0.0, "joint_rate": 0.0,
                 "pair_ssim": 0.01, "precision": 0.1, "recall": 0.0}],
            "edits": [edit("mean", G(), 1.0, 0.05, 0.6, 0.95),
                      edit("mean", G(), 3.0, 0.12, 0.5, 0.75),
                      edit("swap", G(coupling=8), 1.0, 0.09, 0.39, 0.74),  # face rate falls
                      edit("reexpress", G(prior=3), 1.0, 0.27, 0.8, 0.72),
                      edit("reexpress", G(prior=7), 1.0, 0.43, 0.8, 0.49)]}  # person lost


@pytest.fixture
def person_report():
    """A made-up evaluation report with the face metrics (``_person_report``)."""
    return _person_report()


#: the conditioning grid's scoring, small
SMALL_SCORING = FidelityConfig(per_emotion=6, edit_faces=14, mean_faces=4, temperatures=(0.7, 1.0),
                       guidance=(1.0, 3.0))


@pytest.fixture(scope="module")
def conditioning_runs(synthetic_es, tmp_path_factory):
    root = tmp_path_factory.mktemp("conditioning")
    kwargs = dict(results_dir=root / "results", runs_dir=root / "runs")
    configs = ["top-prior", "label-dropout"]
    with pytest.raises(ValueError, match="has not trained"):
        evaluate_grid("conditioning", "quick", (0,), configs, SMALL_SCORING, **kwargs,
                      emotion_set=synthetic_es)
    run_grid("conditioning", "quick", (0,), device="cpu", emotion_set=synthetic_es, **kwargs)
    run_grid("conditioning", "quick", (1,), configs, device="cpu", emotion_set=synthetic_es,
             **kwargs)
    rows = evaluate_grid("conditioning", "quick", (0, 1), configs, SMALL_SCORING, **kwargs,
                         emotion_set=synthetic_es)
    return root, kwargs, rows


@pytest.fixture
def small_scoring() -> FidelityConfig:
    """The conditioning grid's scoring with which ``conditioning_runs`` were measured."""
    return SMALL_SCORING


