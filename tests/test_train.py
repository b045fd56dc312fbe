"""The trainer: exact resume (also after a real kill), DDP equal to one process, NaN guard, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from conftest import QUICK_TRAIN, TINY_RUN_MODEL

from bplf.data import build_emotion_set, load_emotion_set
from bplf.flows import LabelConfig
from bplf.runs import TrainConfig, load_checkpoint, read_metrics
from bplf.train import Trainer, lr_at, run_model

#: A model small enough to train a few steps in seconds on one CPU thread.


@pytest.fixture(scope="module")
def data_env(tmp_path_factory) -> dict:
    """A synthetic emotion set in its own folder, and the environment pointing at it."""
    root = tmp_path_factory.mktemp("emotion")
    with pytest.warns(UserWarning, match="SYNTHETIC"):
        build_emotion_set(root / "raw", root / "processed")
    env = dict(os.environ, BPLF_RAW_DIR=str(root / "raw"), BPLF_DATA_DIR=str(root / "processed"),
               OMP_NUM_THREADS="1", BPLF_PROGRESS="0")
    return env


@pytest.fixture(scope="module")
def es(data_env):
    return load_emotion_set(data_env["BPLF_RAW_DIR"], data_env["BPLF_DATA_DIR"], build=False)


def _params(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.state_dict().values()
                      if p.is_floating_point()])


def test_warmup_schedule():
    cfg = TrainConfig(lr=1e-3, warmup_steps=10)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3) and lr_at(500, cfg) == pytest.approx(1e-3)
    cool = TrainConfig(lr=1e-3, warmup_steps=10, steps=100, cooldown_steps=20)
    assert lr_at(79, cool) == pytest.approx(1e-3) and lr_at(80, cool) == pytest.approx(1e-3)
    assert lr_at(90, cool) == pytest.approx(5e-4) and lr_at(99, cool) == pytest.approx(5e-5)


def test_training_lowers_the_loss_and_writes_a_run(es, tmp_path):
    cfg = TrainConfig(steps=30, lr=3e-3,
                      **{**QUICK_TRAIN, "eval_interval": 30, "sample_interval": 30})
    trainer = Trainer(run_model(cfg, TINY_RUN_MODEL, 48), cfg, tmp_path, device="cpu",
                      emotion_set=es)
    trainer.fit()
    rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows] == list(range(1, 31))
    first, last = rows[0]["train_bpd"], sum(r["train_bpd"] for r in rows[-5:]) / 5
    assert last < first - 0.3, (first, last)
    assert rows[-1]["val_bpd"] < 9 and rows[-1]["images_per_s"] > 0
    for name in ("config.json", "checkpoint.pt", "best.pt", "samples/step_0000030.png"):
        assert (tmp_path / name).exists(), name
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model"]["hidden_channels"] == 8 and config["train"]["steps"] == 30
    # the checkpoint alone rebuilds the exact model (weights_only load)
    loaded = load_checkpoint(tmp_path)
    assert torch.equal(_params(loaded), _params(trainer.model))


@pytest.mark.parametrize("amp", [False, True])
def test_training_on_each_device(device, amp, es, tmp_path):
    """The same loop on every device; with bf16 autocast (``amp``) too, which really runs the
    convolutions in bf16 while training and leaves validation in float32."""
    cfg = TrainConfig(steps=30, lr=3e-3, amp=amp,
                      **{**QUICK_TRAIN, "eval_interval": 30, "sample_interval": 30})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a CPU without native bf16 is warned about
        trainer = Trainer(run_model(cfg, TINY_RUN_MODEL, 48), cfg, tmp_path, device=device,
                          emotion_set=es)
    dtypes = []
    conv = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda m, i, out: dtypes.append((m.training, out.dtype)))
    trainer.fit()
    rows = read_metrics(tmp_path)
    first, last = rows[0]["train_bpd"], sum(r["train_bpd"] for r in rows[-5:]) / 5
    assert last < first - 0.3 and trainer.state.skipped_total == 0, (first, last)
    assert rows[-1]["val_bpd"] < 9
    # training steps in bf16 under amp (the data-dependent initialisation stays float32)
    assert (torch.bfloat16 in {d for training, d in dtypes if training}) == amp
    assert {d for training, d in dtypes if not training} == {torch.float32}


def test_bf16_on_a_cpu_without_it_is_warned_about(es, tmp_path, monkeypatch):
    import bplf.train

    monkeypatch.setattr(bplf.train, "cpu_has_bf16", lambda: False)
    with pytest.warns(UserWarning, match="no native bfloat16"):
        Trainer(run_model(TrainConfig(steps=1, amp=True, **QUICK_TRAIN), TINY_RUN_MODEL, 48),
                TrainConfig(steps=1, amp=True, **QUICK_TRAIN), tmp_path, "cpu", es)
    monkeypatch.setattr(bplf.train, "cpu_has_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Trainer(run_model(TrainConfig(steps=1, amp=True, **QUICK_TRAIN), TINY_RUN_MODEL, 48),
                TrainConfig(steps=1, amp=True, **QUICK_TRAIN), tmp_path / "b", "cpu", es)


def _straight_and_resumed(es, tmp_path, opts: dict) -> tuple[Trainer, Trainer]:
    """Six steps in one go (``a``), and three steps, stopped, then resumed to six (``b``)."""
    def trainer(steps: int, out: str) -> Trainer:
        cfg = TrainConfig(steps=steps, **opts)
        return Trainer(run_model(cfg, TINY_RUN_MODEL, 48), cfg, tmp_path / out, "cpu", es)

    straight = trainer(6, "a")
    straight.fit()
    trainer(3, "b").fit()
    resumed = trainer(6, "b")
    resumed.fit(resume=True)
    return straight, resumed


def test_resume_continues_exactly(es, tmp_path):
    straight, resumed = _straight_and_resumed(es, tmp_path, QUICK_TRAIN)
    assert resumed.state.step == 6
    torch.testing.assert_close(_params(resumed.model), _params(straight.model), rtol=0, atol=0)
    a, b = read_metrics(tmp_path / "a"), read_metrics(tmp_path / "b")
    assert [r["step"] for r in b] == list(range(1, 7))
    assert [r["train_bpd"] for r in a] == [r["train_bpd"] for r in b]


def test_warm_start_from_a_top_prior_model_is_exact_then_learns_the_label(es, tmp_path):
    """init_from: a label-conditioned run starts as exactly the unconditioned source model for
    every label (and the null label), then training makes the label matter."""
    from bplf.utils import CheckpointError

    source = Trainer(run_model(TrainConfig(steps=4, **QUICK_TRAIN), TINY_RUN_MODEL, 48),
                     TrainConfig(steps=4, **QUICK_TRAIN), tmp_path / "v1", "cpu", es)
    source.fit()
    conditioned = {**TINY_RUN_MODEL, "label": LabelConfig(splits=True, couplings=True)}
    cfg = TrainConfig(steps=12, label_dropout=0.2, init_from=str(tmp_path / "v1"),
                      **{**QUICK_TRAIN, "lr": 3e-3})
    trainer = Trainer(run_model(cfg, conditioned, 48), cfg, tmp_path / "v2", "cpu", es)
    partial = trainer.warm_start()
    assert "label.embedding.weight" in partial
    assert any(n.endswith("conv_branch.0.weight") for n in partial)
    src, new = load_checkpoint(tmp_path / "v1", weights="checkpoint.pt"), trainer.model.eval()
    x = torch.rand(6, 1, 48, 48) - 0.5
    with torch.no_grad():
        for y in range(7):
            assert torch.equal(new.log_prob(x, y), src.log_prob(x, y)), y
        assert torch.equal(new.log_prob(x, new.null_label), src.log_prob(x, None))
        assert torch.equal(new.sample(4, 2, generator=torch.Generator().manual_seed(0)),
                           src.sample(4, 2, generator=torch.Generator().manual_seed(0)))
    trainer.fit()  # warm-starts again (no resume) and trains
    rows = read_metrics(tmp_path / "v2")
    assert rows[0]["train_bpd"] < 9 and trainer.state.step == 12
    with torch.no_grad():  # the label now changes the map, not only the priors
        z = trainer.model.encode(x, 0)
        assert (trainer.model.decode(z, 3) - x).abs().max() > 1e-4
    # a source of another architecture is refused with the file named
    other = Trainer(run_model(TrainConfig(steps=1, **QUICK_TRAIN),
                              {**TINY_RUN_MODEL, "hidden_channels": 4}, 48),
                    TrainConfig(steps=1, **QUICK_TRAIN), tmp_path / "wide", "cpu", es)
    other.fit()
    wide = TrainConfig(steps=1, init_from=str(tmp_path / "wide"), **QUICK_TRAIN)
    bad = Trainer(run_model(wide, conditioned, 48), wide, tmp_path / "bad", "cpu", es)
    with pytest.raises(CheckpointError, match=r"wide/best.pt: cannot start this run"):
        bad.warm_start()
    with pytest.raises(FileNotFoundError, match=r"none: no weights \(model.pt"):
        none = TrainConfig(steps=1, init_from=str(tmp_path / "none"), **QUICK_TRAIN)
        Trainer(run_model(none, conditioned, 48), none, tmp_path / "c", "cpu", es).warm_start()


def _train_cmd(out: Path, steps: int, extra: dict | None = None) -> list[str]:
    config = {"train": {**QUICK_TRAIN, "steps": steps, **(extra or {})}, "model": TINY_RUN_MODEL}
    return [sys.executable, "-m", "bplf", "train", "--config", json.dumps(config),
            "--out", str(out), "--device", "cpu"]


def test_killed_run_resumes_without_a_gap(data_env, tmp_path):
    out = tmp_path / "run"
    cmd = _train_cmd(out, steps=400, extra={"checkpoint_interval": 5, "eval_interval": 1000})
    proc = subprocess.Popen(cmd, env=data_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (out / "metrics.jsonl").exists() and len(read_metrics(out)) >= 12:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = len(read_metrics(out))
    assert 12 <= killed_at < 400
    result = subprocess.run(cmd + ["--resume"], env=data_env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    steps = [r["step"] for r in read_metrics(out)]
    assert steps == list(range(1, 401)), "every step logged once: no gap, no repeat"
    assert "finished at step 400" in result.stdout


def test_ddp_two_processes_match_one(data_env, tmp_path):
    """2 gloo processes, each on half of every global batch, end where one process ends."""
    single = subprocess.run(_train_cmd(tmp_path / "one", steps=4), env=data_env,
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                          "--master_port=29517", *_train_cmd(tmp_path / "two", steps=4)[1:]],
                         env=data_env, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one, two = load_checkpoint(tmp_path / "one"), load_checkpoint(tmp_path / "two")
    torch.testing.assert_close(_params(two), _params(one), rtol=1e-4, atol=1e-5)
    b1, b2 = read_metrics(tmp_path / "one"), read_metrics(tmp_path / "two")
    assert [r["step"] for r in b2] == [1, 2, 3, 4]
    # rank 0 logs its own half-batch loss: equal in expectation, close on a tiny model
    assert abs(b1[-1]["train_bpd"] - b2[-1]["train_bpd"]) < 0.5


def test_nonfinite_losses_are_skipped_then_stop(es, tmp_path, monkeypatch):
    trainer = Trainer(run_model(TrainConfig(steps=5, max_nonfinite=3, **QUICK_TRAIN),
                                TINY_RUN_MODEL, 48),
                      TrainConfig(steps=5, max_nonfinite=3, **QUICK_TRAIN), tmp_path, "cpu", es)
    real = trainer.model.log_prob
    calls = {"n": 0}

    def flaky(x, y=None):
        calls["n"] += 1
        lp = real(x, y)
        return lp * float("nan") if calls["n"] in (2, 3) else lp

    monkeypatch.setattr(trainer.model, "log_prob", flaky)
    state = trainer.fit()
    assert state.step == 5 and state.skipped_total == 2
    monkeypatch.setattr(trainer.model, "log_prob", lambda x, y=None: real(x, y) * float("nan"))
    trainer2 = Trainer(run_model(TrainConfig(steps=5, max_nonfinite=3, **QUICK_TRAIN),
                                 TINY_RUN_MODEL, 48),
                       TrainConfig(steps=5, max_nonfinite=3, **QUICK_TRAIN), tmp_path / "x",
                       "cpu", es)
    monkeypatch.setattr(trainer2.model, "log_prob", lambda x, y=None: real(x, y) * float("inf"))
    with pytest.raises(FloatingPointError, match="3 consecutive non-finite"):
        trainer2.fit()


def test_cli_sample_and_evaluate(data_env, tmp_path):
    out = tmp_path / "run"
    subprocess.run(_train_cmd(out, steps=3), env=data_env, check=True, capture_output=True,
                   timeout=300)
    png = tmp_path / "grid.png"
    subprocess.run([sys.executable, "-m", "bplf", "sample", "--checkpoint", str(out),
                    "--output", str(png), "--per-emotion", "3"], env=data_env, check=True,
                   capture_output=True, timeout=300)
    from PIL import Image

    assert Image.open(png).size == (3 * 48, 7 * 48)
    report_path = tmp_path / "report.json"
    result = subprocess.run([sys.executable, "-m", "bplf", "evaluate", "--checkpoint", str(out),
                             "--limit", "40", "--per-emotion", "12", "--temperatures", "0.7",
                             "--edit-faces", "10", "--output", str(report_path)], env=data_env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(report_path.read_text())
    synthetic = report["sources"]["synthetic"]
    assert synthetic["n"] == 40 and 0 < synthetic["marginal_bpd"] < 12
    # summing the label out can only raise the density above the true-label term's share
    assert synthetic["marginal_bpd"] <= synthetic["conditional_bpd"] + 8 / (48 * 48 * 0.69)
    assert report["round_trip_max_abs_error"] < 1e-3
    fidelity = report["fidelity"]  # judged by the shipped classifier
    assert [(r["generator"], r["temperature"], r["guidance"]) for r in fidelity] == [
        ("real faces (ceiling)", None, None), ("run", 0.7, "unguided"),
        ("untrained (floor)", 0.7, "unguided")]
    # every method of a model without label-conditioned couplings, each row with the face
    # metrics; gradient on at most 14 faces at intensity 1
    methods = [(e["method"], e["intensity"]) for e in report["edits"]]
    assert methods == [("mean", a) for a in (0.5, 1.0, 1.5, 2.0, 3.0)] + [
        ("prior", a) for a in (0.5, 1.0, 1.5, 2.0, 3.0)] + [
        ("reexpress", a) for a in (0.5, 1.0, 1.5)] + [("gradient", 1.0)]
    assert [e["n"] for e in report["edits"]][-2:] == [10 * 6, 10 * 6]
    for row in [*fidelity, *report["edits"]]:
        rates = [row[k] for k in ("face_rate", "joint_rate")]
        assert all(0 <= r <= 1 for r in rates) and rates[1] <= rates[0]
    assert report["recommended"]["samples"]["temperature"] == 0.7
    assert fidelity[1]["n"] == 7 * 12 and "fd_per_emotion" in fidelity[1]
    # the ablations (notebook 06) read such reports as tidy rows, one figure each
    from bplf.research.experiments import read_fidelity

    (tmp_path / "fid" / "fidelity").mkdir(parents=True)
    report_path.rename(tmp_path / "fid" / "fidelity" / "branches-conv.json")
    rows = read_fidelity(results_dir=tmp_path / "fid")
    assert set(zip(rows["grid"], rows["config"], strict=True)) == {("branches", "conv")}

    def figure(metric: str, generator: str) -> list[float]:
        return rows.loc[(rows["metric"] == metric) & (rows["generator"] == generator),
                        "value"].tolist()

    assert figure("sample_accuracy", "model") == [fidelity[1]["accuracy"]]
    assert figure("sample_fd", "floor") == [fidelity[2]["fd"]]
    assert figure("sample_fd", "real") == [fidelity[0]["fd"]]
    assert figure("edit_joint_rate", "model") == [e["joint_rate"] for e in report["edits"]]


def test_cli_evaluates_guided_samples_and_swap_edits(data_env, tmp_path):
    """A run trained with label dropout is sampled and swap-edited at every guidance scale
    asked for, each row labelled with its scale; a run without a null label refuses guidance."""
    guided, plain = tmp_path / "guided", tmp_path / "plain"
    conditioned = {**TINY_RUN_MODEL, "label": {"splits": True, "couplings": True}}
    for out, extra in ((guided, {"label_dropout": 0.15}), (plain, {})):
        config = {"train": {**QUICK_TRAIN, "steps": 3, **extra}, "model": conditioned}
        subprocess.run([sys.executable, "-m", "bplf", "train", "--config", json.dumps(config),
                        "--out", str(out), "--device", "cpu"], env=data_env, check=True,
                       capture_output=True, timeout=300)
    evaluate = [sys.executable, "-m", "bplf", "evaluate", "--limit", "20", "--per-emotion", "6",
                "--temperatures", "0.7", "--edit-faces", "8", "--guidance", "1", "3"]
    report_path = tmp_path / "report.json"
    result = subprocess.run([*evaluate, "--checkpoint", str(guided), "--output",
                             str(report_path)], env=data_env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(report_path.read_text())
    assert [(r["generator"], r["temperature"], r["guidance"]) for r in report["fidelity"]] == [
        ("real faces (ceiling)", None, None), ("guided", 0.7, "unguided"),
        ("guided", 0.7, "couplings 3"), ("guided", 0.7, "prior 3"),
        ("untrained (floor)", 0.7, "unguided")]
    guided_edits = sorted({(e["method"], e["guidance"]) for e in report["edits"]
                           if e["method"] in ("swap", "reexpress")})
    assert guided_edits == [("reexpress", "prior 3"), ("reexpress", "unguided"),
                            ("swap", "couplings 3"), ("swap", "unguided")]
    assert all(e["n"] == 8 * 6 for e in report["edits"])
    assert report["recommended"]["samples"]["guidance"] in ("unguided", "couplings 3", "prior 3")
    assert set(report["recommended"]["ranges"]) == {"samples", "edits"}
    refused = subprocess.run([*evaluate, "--checkpoint", str(plain)], env=data_env,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0
    assert "plain: trained without label dropout" in refused.stderr


def test_recommend_takes_faces_a_person_accepts(person_report):
    """Samples: the best joint rate among settings that stay faces (face rate >= 0.9x real)
    and stay diverse (pair SSIM <= 0.3); edits: the best joint hit-rate among those that keep
    the person (SSIM >= the same-person reference) and the face rate (>= 0.9x the inputs')."""
    from bplf.research.evaluate import recommend, safe_ranges
    from bplf.research.metrics.fidelity import edits_frame

    best = recommend(person_report)
    # prior 3 at T 0.7 has a higher joint rate, but its samples are alike (pair SSIM 0.45)
    assert (best["samples"]["temperature"], best["samples"]["guidance"]) == (1.0, "prior 4")
    assert best["samples"]["meets_rule"] and best["samples"]["joint_rate"] == 0.4
    # reexpress at prior 7 reads more often but loses the person; the swap loses the face
    assert (best["edits"]["method"], best["edits"]["guidance"]) == ("reexpress", "prior 3")
    table = edits_frame(person_report["edits"])
    assert table["keeps_person"].tolist() == [True, True, True, True, False]
    ranges = safe_ranges(person_report)
    assert ranges["samples"] == {"prior": 4.0, "coupling": 1.0}  # couplings 8: blotches
    assert ranges["edits"]["intensity"] == {"mean": 1.0, "swap": 0.0, "reexpress": 1.0}
    assert ranges["edits"]["prior"] == 3.0
    # where nothing passes, the best joint rate is given, flagged
    for r in person_report["fidelity"]:
        r["pair_ssim"] = 0.9
    flagged = recommend(person_report)["samples"]
    assert not flagged["meets_rule"] and flagged["guidance"] == "prior 3"


def test_export_keeps_the_selected_weights(data_env, tmp_path):
    from bplf.pretrained import load_pretrained

    out = tmp_path / "run"
    subprocess.run(_train_cmd(out, steps=6), env=data_env, check=True, capture_output=True,
                   timeout=300)
    result = subprocess.run([sys.executable, "-m", "bplf", "export", "--run", str(out)],
                            env=data_env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    exported = out / "model.pt"
    assert exported.stat().st_size < (out / "checkpoint.pt").stat().st_size  # no optimizer
    rows = [r for r in read_metrics(out) if "val_bpd" in r]
    assert [r["step"] for r in rows] == [4, 6]
    best_step = min(rows, key=lambda r: r["val_bpd"])["step"]
    assert torch.load(exported, weights_only=True)["state"]["step"] == best_step
    best = load_checkpoint(out, weights="best.pt")
    assert torch.equal(_params(load_pretrained(out)), _params(best))  # model.pt comes first
    exported.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="model.pt: not a bplf checkpoint"):
        load_pretrained(out)
    with pytest.raises(FileNotFoundError, match="no pretrained model here"):
        load_pretrained(tmp_path / "nothing")


def test_noise_and_averaged_weights_resume_exactly_and_are_exported(es, tmp_path):
    """noise_std and ema_decay: a stopped-and-resumed run is bit-identical to an uninterrupted
    one (weights, averaged weights, the noise drawn); the average is what is selected,
    evaluated, exported and loaded, with the training noise std beside it."""
    from bplf.pretrained import export_model
    from bplf.runs import load_checkpoint, read_checkpoint

    opts = {**QUICK_TRAIN, "noise_std": 0.02, "ema_decay": 0.9}
    straight, resumed = _straight_and_resumed(es, tmp_path, opts)
    for name in ("model", "ema"):
        a, b = (read_checkpoint(t.out / "checkpoint.pt")[name] for t in (straight, resumed))
        assert all(torch.equal(a[k], b[k]) for k in a), name
    ckpt = read_checkpoint(straight.out / "checkpoint.pt")
    assert any(not torch.equal(ckpt["model"][k], ckpt["ema"][k]) for k in ckpt["model"])
    # the noise changes the batches: the same run without it trains other weights
    clean = Trainer(run_model(TrainConfig(steps=6, **{**opts, "noise_std": 0.0}),
                              TINY_RUN_MODEL, 48),
                    TrainConfig(steps=6, **{**opts, "noise_std": 0.0}), tmp_path / "c",
                    "cpu", es)
    clean.fit()
    other = read_checkpoint(clean.out / "checkpoint.pt")["ema"]
    assert any(not torch.equal(other[k], ckpt["ema"][k]) for k in other)
    export_model(straight.out, weights="checkpoint.pt")
    exported = read_checkpoint(straight.out / "model.pt")["model"]
    assert all(torch.equal(exported[k], ckpt["ema"][k].float()) for k in exported)
    loaded = load_checkpoint(straight.out)
    assert loaded.noise_std == 0.02
    assert all(torch.equal(v, exported[k]) for k, v in loaded.state_dict().items())
    with pytest.raises(ValueError, match="noise_std"):
        TrainConfig(noise_std=-0.1)


def test_denoising_is_the_posterior_mean_of_a_gaussian_density(faces):
    """A fresh flow is a linear map, so its density is an exact Gaussian N(mu, S). Read as the
    density of noisy faces (noise std sigma), Tweedie's step must give the posterior mean
    x - sigma^2 S^-1 (x - mu), computed here from the map's Jacobian."""
    from bplf.model import build_model

    torch.manual_seed(0)
    model = build_model("bplf", image_size=4, levels=1, steps_per_level=2, hidden_channels=4,
                        pca="none", num_classes=2).double()
    model.initialize(faces(64, size=4).double(), torch.zeros(64, dtype=torch.long))
    model.noise_std = sigma = 0.05
    x = faces(3, size=4, seed=1).double()
    flat = x.flatten(1)

    def z_of(v: torch.Tensor) -> torch.Tensor:  # the latent, standardised by the prior
        zs = model.encode(v.view(1, 1, 4, 4), 1)
        mean, log_std = model.top_prior.params(1)
        return ((zs[-1] - mean) * torch.exp(-log_std)).flatten()

    jac = torch.autograd.functional.jacobian(z_of, flat[0])  # constant: the map is linear
    precision = jac.T @ jac  # S^-1 of x = A^-1 (mu_z + std * eps)
    mu = model.decode([model.top_prior.params(1)[0]], 1).flatten(1)
    expected = flat - sigma**2 * (flat - mu) @ precision.T
    got = model.denoise(x, 1).flatten(1)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-8)
    assert (got - flat).abs().max() > 1e-4  # it moved
    assert torch.equal(model.denoise(x, 1, sigma=0), x)
