"""Quick mode and data locations are read from the environment in one place."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from bplf import settings


def test_quick_mode_switch(monkeypatch):
    monkeypatch.setenv("BPLF_QUICK", "1")
    assert settings.quick_mode() and settings.pick(100, 3) == 3
    monkeypatch.setenv("BPLF_QUICK", "0")
    assert not settings.quick_mode() and settings.pick(100, 3) == 100
    monkeypatch.delenv("BPLF_QUICK")
    assert settings.pick("full", "quick") == "full"


def test_data_locations(monkeypatch, tmp_path):
    monkeypatch.delenv("BPLF_RAW_DIR", raising=False)
    monkeypatch.delenv("BPLF_DATA_DIR", raising=False)
    assert settings.raw_dir() == settings.REPO_ROOT / "data" / "raw"
    assert settings.data_dir() == settings.REPO_ROOT / "data" / "processed"
    monkeypatch.setenv("BPLF_RAW_DIR", str(tmp_path / "r"))
    monkeypatch.setenv("BPLF_DATA_DIR", str(tmp_path / "p"))
    assert settings.raw_dir() == tmp_path / "r" and settings.data_dir() == tmp_path / "p"
    assert isinstance(settings.raw_dir(), Path)


def test_progress_quiet_under_ci(monkeypatch):
    monkeypatch.delenv("BPLF_PROGRESS", raising=False)
    monkeypatch.setenv("CI", "true")
    assert not settings.progress_enabled()
    monkeypatch.delenv("CI")
    assert settings.progress_enabled()
    monkeypatch.setenv("BPLF_PROGRESS", "0")
    assert not settings.progress_enabled()


def test_tf32_is_off_after_import_and_a_trainer_can_allow_it(device, synthetic_es, tmp_path):
    """TF32 breaks exact inverses on an H100 (round trip 1e-3): off unless a run asks."""
    import bplf  # noqa: F401  (the import itself turns TF32 off)
    from bplf.runs import TrainConfig
    from bplf.train import Trainer, run_model

    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    cfg = TrainConfig(steps=1, tf32=True, init_size=16, pca_fit_size=64, train_limit=64,
                      val_size=16)
    try:
        model = run_model(cfg, {"hidden_channels": 8, "steps_per_level": 1}, 48)
        Trainer(model, cfg, tmp_path, device, synthetic_es)
        assert torch.backends.cudnn.allow_tf32 == (device.type == "cuda")
    finally:
        settings.set_tf32(False)


def test_bf16_support_is_read_from_the_cpu_flags(tmp_path, monkeypatch):
    import platform

    from bplf.settings import cpu_has_bf16

    monkeypatch.setattr(platform, "system", lambda: "Linux")
    for flags, native in (("fpu avx2 avx512f avx512bw", False),
                          ("fpu avx512f avx512_bf16 avx512_vnni", True),
                          ("fpu amx_bf16 amx_tile", True)):
        info = tmp_path / "cpuinfo"
        info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
        assert cpu_has_bf16(str(info)) is native, flags
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n")
    assert cpu_has_bf16(str(arm))
    assert not cpu_has_bf16(str(tmp_path / "missing"))


def test_run_dir_is_fresh_and_belongs_to_one_process(monkeypatch, tmp_path):
    monkeypatch.setenv("BPLF_RUNS_DIR", str(tmp_path))
    first = settings.run_dir("04_train")
    assert first.is_dir() and first.parent == tmp_path / "04_train"
    (first / "metrics.jsonl").write_text("{}")
    again = settings.run_dir("04_train")  # the notebook run again in the same kernel
    assert again == first and not any(again.iterdir())
    other = subprocess.run([sys.executable, "-c", "from bplf.settings import run_dir; "
                            "print(run_dir('04_train'))"], capture_output=True, text=True,
                           check=True, env=os.environ).stdout.strip()
    assert Path(other).parent == first.parent and Path(other) != first
    assert sorted(p.name for p in (tmp_path / "04_train").iterdir()) == sorted(
        {first.name, Path(other).name})
    for bad in ("", "../x", "a/b"):
        with pytest.raises(ValueError, match="plain folder name"):
            settings.run_dir(bad)


def test_runs_go_to_home_or_temp_when_the_checkout_is_read_only(monkeypatch, tmp_path):
    monkeypatch.delenv("BPLF_RUNS_DIR", raising=False)
    blocked = tmp_path / "file"
    blocked.write_text("")  # no folder can be made under a file, even by root
    monkeypatch.setattr(settings, "REPO_ROOT", blocked / "repo")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert settings.runs_root() == tmp_path / "home" / ".cache" / "bplf" / "runs"
    monkeypatch.setenv("HOME", str(blocked / "home"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    assert settings.runs_root().parent == tmp_path / "tmp"
    assert settings.run_dir("x").is_relative_to(tmp_path / "tmp")
