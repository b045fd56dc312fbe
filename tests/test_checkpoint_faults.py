"""Checkpoints under faults: a write cut short by a full disk keeps the previous file loadable
and the run resumable; a damaged or mismatched file fails with an error naming it, the problem
and what to do."""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import QUICK_TRAIN, TINY_RUN_MODEL

import bplf.utils
from bplf.model import ModelConfig
from bplf.pretrained import export_model, load_pretrained
from bplf.research.metrics.classifier import (
    ClassifierConfig,
    EmotionCNN,
    load_classifier,
    save_classifier,
)
from bplf.runs import (
    TrainConfig,
    load_checkpoint,
    load_run_config,
    read_checkpoint,
    read_metrics,
    save_run_config,
)
from bplf.train import Trainer, run_model
from bplf.utils import CheckpointError, append_line, atomic_save, atomic_write, read_jsonl

#: a quick run that never evaluates in these tests' few steps
QUICK_TRAIN_NO_EVAL = {**QUICK_TRAIN, "eval_interval": 100}
ENOSPC = OSError(errno.ENOSPC, "No space left on device")


def temps(folder: Path) -> list[str]:
    """Temporaries left anywhere under ``folder``."""
    return sorted(p.name for p in folder.rglob("*.tmp"))


def params(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.state_dict().values()
                      if p.is_floating_point()])


def disk_full(monkeypatch, fail_on: int = 1) -> list[dict]:
    """From now on, the ``fail_on``-th ``torch.save`` writes half of its bytes, then raises
    ENOSPC; the others save normally. Returns the model weights each successful save wrote."""
    real = torch.save
    saved: list[dict] = []
    calls = {"n": 0}

    def save(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] != fail_on:
            real(obj, f, *args, **kwargs)
            saved.append({k: v.clone() for k, v in obj["model"].items()})
            return
        buf = io.BytesIO()
        real(obj, buf)
        data = buf.getvalue()
        with open(f, "wb") as out:
            out.write(data[: len(data) // 2])
        raise ENOSPC

    monkeypatch.setattr(torch, "save", save)
    return saved


# -- writes ---------------------------------------------------------------------------------
def test_disk_full_during_a_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "x.pt"
    atomic_save({"model": {"w": torch.ones(1000)}}, path)
    disk_full(monkeypatch)
    with pytest.raises(OSError) as info:
        atomic_save({"model": {"w": torch.zeros(1000)}}, path)
    assert info.value.errno == errno.ENOSPC
    assert torch.equal(read_checkpoint(path)["model"]["w"], torch.ones(1000))
    assert temps(tmp_path) == []


def test_an_error_only_at_fsync_keeps_the_previous_file(tmp_path, monkeypatch):
    """A full disk may show only when the data is flushed (delayed allocation, NFS)."""
    path = tmp_path / "config.json"
    atomic_write(path, lambda tmp: tmp.write_text('{"a": 1}'))

    def fsync(fd: int) -> None:
        raise ENOSPC

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, lambda tmp: tmp.write_text('{"a": 2}'))
    assert json.loads(path.read_text()) == {"a": 1} and temps(tmp_path) == []


def test_a_failed_append_leaves_no_torn_line(tmp_path, monkeypatch):
    path = tmp_path / "metrics.jsonl"
    append_line(path, json.dumps({"step": 1}))

    def half(fd: int, data: bytes) -> None:
        os.write(fd, data[: len(data) // 2])
        raise ENOSPC

    monkeypatch.setattr(bplf.utils, "_write_all", half)
    with pytest.raises(OSError, match="No space left"):
        append_line(path, json.dumps({"step": 2, "train_bpd": 5.25}))
    assert path.read_text() == '{"step": 1}\n'


def test_read_jsonl_drops_a_torn_last_line_and_names_a_corrupt_one(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "tr')  # killed mid-append
    assert read_jsonl(path) == [{"step": 1}, {"step": 2}]
    path.write_text('{"step": 1}\n{"st\n{"step": 3}\n')
    with pytest.raises(CheckpointError, match=r"metrics\.jsonl: line 2 is not JSON.*delete"):
        read_jsonl(path)


# -- the trainer ----------------------------------------------------------------------------
CFG = TrainConfig(steps=9, **QUICK_TRAIN_NO_EVAL)  # checkpoints at steps 3, 6 and 9


@pytest.fixture(scope="module")
def straight(synthetic_es, tmp_path_factory) -> Trainer:
    """The uninterrupted run every interrupted one must end equal to."""
    trainer = Trainer(run_model(CFG, TINY_RUN_MODEL, 48),
                      CFG, tmp_path_factory.mktemp("straight"), "cpu", synthetic_es)
    trainer.fit()
    return trainer


def _assert_resumes_exactly(out: Path, straight: Trainer, es) -> None:
    resumed = Trainer(run_model(CFG, TINY_RUN_MODEL, 48), CFG, out, "cpu", es)
    resumed.fit(resume=True)
    assert resumed.state.step == CFG.steps
    torch.testing.assert_close(params(resumed.model), params(straight.model), rtol=0, atol=0)
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == list(range(1, CFG.steps + 1)), "every step logged once"
    assert [r["train_bpd"] for r in rows] == [r["train_bpd"] for r in read_metrics(straight.out)]
    assert temps(out) == []


def test_disk_full_at_a_checkpoint_keeps_the_previous_one_and_resumes(synthetic_es, straight,
                                                                      tmp_path, monkeypatch):
    saved = disk_full(monkeypatch, fail_on=2)  # step 3 saves; step 6 runs out of disk
    trainer = Trainer(run_model(CFG, TINY_RUN_MODEL, 48), CFG, tmp_path, "cpu", synthetic_es)
    with pytest.raises(OSError, match="No space left"):
        trainer.fit()
    assert trainer.state.step == 6 and temps(tmp_path) == []
    assert read_checkpoint(tmp_path / "checkpoint.pt")["state"]["step"] == 3
    previous = load_checkpoint(tmp_path, weights="checkpoint.pt").state_dict()
    assert all(torch.equal(previous[k], v) for k, v in saved[0].items())
    _assert_resumes_exactly(tmp_path, straight, synthetic_es)


def test_disk_full_while_logging_leaves_no_torn_row_and_resumes(synthetic_es, straight, tmp_path,
                                                                monkeypatch):
    real = bplf.utils._write_all
    calls = {"n": 0}

    def write(fd: int, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 5:  # the row of step 5
            os.write(fd, data[: len(data) // 2])
            raise ENOSPC
        real(fd, data)

    monkeypatch.setattr(bplf.utils, "_write_all", write)
    with pytest.raises(OSError, match="No space left"):
        Trainer(run_model(CFG, TINY_RUN_MODEL, 48), CFG, tmp_path, "cpu", synthetic_es).fit()
    assert (tmp_path / "metrics.jsonl").read_text().endswith("\n")
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3, 4]
    monkeypatch.undo()
    _assert_resumes_exactly(tmp_path, straight, synthetic_es)


def test_a_run_killed_mid_write_resumes(synthetic_es, straight, tmp_path):
    """A kill (or power loss) cannot clean up: a torn last row and temporaries are left."""
    Trainer(run_model(TrainConfig(**{**vars(CFG), "steps": 3}), TINY_RUN_MODEL, 48),
            TrainConfig(**{**vars(CFG), "steps": 3}), tmp_path, "cpu", synthetic_es).fit()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "wall": 0.')
    (tmp_path / ".checkpoint.pt.k1ll3d.tmp").write_bytes(b"PK\x03\x04 half a checkpoint")
    (tmp_path / ".metrics.jsonl.k1ll3d.tmp").write_text('{"step": 1}\n')
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3]
    _assert_resumes_exactly(tmp_path, straight, synthetic_es)


@pytest.fixture(scope="module")
def run3(synthetic_es, tmp_path_factory) -> Path:
    """A run stopped at its step-3 checkpoint."""
    out = tmp_path_factory.mktemp("run3")
    Trainer(run_model(TrainConfig(**{**vars(CFG), "steps": 3}), TINY_RUN_MODEL, 48),
            TrainConfig(**{**vars(CFG), "steps": 3}), out, "cpu", synthetic_es).fit()
    return out


def _truncate(file: Path) -> None:
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


def _weights_only(file: Path) -> None:
    torch.save({"model": read_checkpoint(file)["model"]}, file)  # like an exported model.pt


DAMAGED_CHECKPOINTS: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (_truncate, r"checkpoint\.pt: not a bplf checkpoint: the file is truncated "
                             r"or corrupt.*copy best\.pt over it"),
    "empty": (lambda f: f.write_bytes(b""), r"checkpoint\.pt: .*the file is empty"),
    "foreign": (lambda f: f.write_bytes(b"hello, world"),
                r"checkpoint\.pt: .*not a file written by torch\.save.*delete it"),
    "code": (lambda f: f.write_bytes(pickle.dumps(os.getcwd, protocol=2)),
             r"checkpoint\.pt: .*objects other than tensors and numbers"),
    "weights only": (_weights_only, r"checkpoint\.pt: not a training checkpoint \(no optimizer"),
}


@pytest.mark.parametrize("damage", DAMAGED_CHECKPOINTS)
def test_resuming_from_a_damaged_checkpoint_names_it(synthetic_es, run3, tmp_path, damage):
    out = tmp_path / "run"
    shutil.copytree(run3, out)
    corrupt, pattern = DAMAGED_CHECKPOINTS[damage]
    corrupt(out / "checkpoint.pt")
    with pytest.raises(CheckpointError, match=pattern):
        Trainer(run_model(CFG, TINY_RUN_MODEL, 48), CFG, out, "cpu", synthetic_es).fit(resume=True)


def test_resuming_with_other_model_options_names_the_checkpoint(synthetic_es, run3, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(run3, out)
    trainer = Trainer(run_model(CFG, {**TINY_RUN_MODEL, "hidden_channels": 16}, 48),
                      CFG, out, "cpu", synthetic_es)
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: weights do not match the model "
                       r"this Trainer builds \(.*size mismatch.*resume with the model options"):
        trainer.fit(resume=True)


# -- the exported model.pt + config.json ----------------------------------------------------
@pytest.fixture(scope="module")
def exported(run3) -> Path:
    export_model(run3)
    return run3


def test_disk_full_during_export_keeps_the_previous_model(exported, tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(exported, run)
    before = (run / "model.pt").read_bytes()
    disk_full(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        export_model(run, weights="checkpoint.pt")
    assert (run / "model.pt").read_bytes() == before and temps(run) == []
    load_pretrained(run)


def test_export_command_names_a_damaged_source(exported, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(exported, run)
    _truncate(run / "best.pt")
    result = subprocess.run([sys.executable, "-m", "bplf", "export", "--run", str(run)],
                            capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode != 0
    assert re.search(r"CheckpointError: .*best\.pt: not a bplf checkpoint: the file is truncated"
                     r".*load checkpoint\.pt", result.stderr), result.stderr[-2000:]
    assert (run / "model.pt").read_bytes() == (exported / "model.pt").read_bytes()


def test_disk_full_while_writing_the_config_keeps_the_previous_one(exported, tmp_path,
                                                                   monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(exported, run)
    before = (run / "config.json").read_text()
    real = Path.write_text

    def half(self: Path, data: str, *args, **kwargs) -> int:
        real(self, data[: len(data) // 2])
        raise ENOSPC

    monkeypatch.setattr(Path, "write_text", half)
    with pytest.raises(OSError, match="No space left"):
        save_run_config(run, ModelConfig(**TINY_RUN_MODEL), TrainConfig(steps=99))
    monkeypatch.undo()
    assert (run / "config.json").read_text() == before and temps(run) == []
    assert load_run_config(run)[1].steps == 3


def _edit_config(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        payload = json.loads((run / "config.json").read_text())
        edit(payload)
        (run / "config.json").write_text(json.dumps(payload))
    return apply


def _set(section: str, **values) -> Callable[[dict], None]:
    return lambda p: p[section].update(values)


def _drop(section: str, name: str) -> Callable[[dict], None]:
    return lambda p: p[section].pop(name)


BAD_RUNS: dict[str, tuple[Callable[[Path], None], str]] = {
    "model.pt truncated": (lambda r: _truncate(r / "model.pt"),
                           r"model\.pt: not a bplf checkpoint: the file is truncated or corrupt"
                           r".*python -m bplf export"),
    "model.pt not torch": (lambda r: (r / "model.pt").write_bytes(b"not a checkpoint"),
                           r"model\.pt: not a bplf checkpoint: it is not a file written by "
                           r"torch\.save"),
    "model.pt no weights": (lambda r: torch.save([1, 2], r / "model.pt"),
                            r"model\.pt: not a bplf checkpoint: it holds no model weights"),
    "model.pt shapes": (_edit_config(_set("model", hidden_channels=16)),
                        r"model\.pt: weights do not match .*config\.json \(.*size mismatch.*"
                        r"saved by a run with another model config"),
    "model.pt keys": (lambda r: torch.save({"model": {"junk": torch.zeros(2)}}, r / "model.pt"),
                      r"model\.pt: weights do not match .*config\.json \(.*Missing key"),
    "config.json not JSON": (lambda r: _truncate(r / "config.json"),
                             r"config\.json: not valid JSON .*restore the config\.json"),
    "config.json empty": (lambda r: (r / "config.json").write_text(""),
                          r"config\.json: the file is empty"),
    "config.json a list": (lambda r: (r / "config.json").write_text("[1, 2]"),
                           r"config\.json: a JSON list, not an object"),
    "no model section": (_edit_config(lambda p: p.pop("model")),
                         r"config\.json: no 'model' section"),
    "unknown model field": (_edit_config(_set("model", depth=4)),
                            r"config\.json \['model'\]: unknown ModelConfig fields \['depth'\]"
                            r".*remove them"),
    "unknown train field": (_edit_config(_set("train", epochs=4)),
                            r"config\.json \['train'\]: unknown TrainConfig fields \['epochs'\]"),
    "missing model field": (_edit_config(_drop("model", "pca")),
                            r"config\.json \['model'\]: missing ModelConfig fields \['pca'\]"
                            r".*values the weights were trained with"),
    "missing train field": (_edit_config(_drop("train", "preset")),
                            r"config\.json \['train'\]: missing TrainConfig fields \['preset'\]"),
    "invalid model field": (_edit_config(_set("model", levels=0)),
                            r"config\.json \['model'\]: invalid ModelConfig \(.*levels"),
}


@pytest.mark.parametrize("fault", BAD_RUNS)
def test_loading_a_damaged_or_mismatched_run_names_the_file(exported, tmp_path, fault):
    run = tmp_path / "run"
    shutil.copytree(exported, run)
    damage, pattern = BAD_RUNS[fault]
    damage(run)
    for load in (load_pretrained, load_checkpoint):
        with pytest.raises(CheckpointError, match=pattern) as info:
            load(run)
        assert isinstance(info.value, ValueError) and str(run) in str(info.value)


def test_fields_added_later_may_be_missing(exported, tmp_path):
    """Configs written before ``implementation``, ``cooldown_steps`` and ``tf32`` existed (the
    shipped one among them) still load, with the defaults that reproduce them."""
    run = tmp_path / "run"
    shutil.copytree(exported, run)
    _edit_config(lambda p: [p["model"].pop("implementation"), p["train"].pop("tf32"),
                            p["train"].pop("cooldown_steps")])(run)
    assert load_run_config(run)[0].implementation == "bplf"
    torch.testing.assert_close(params(load_pretrained(run)), params(load_pretrained(exported)))


# -- the emotion classifier -----------------------------------------------------------------
CNN = ClassifierConfig(widths=[4, 8, 8], features=8)


def test_disk_full_while_saving_the_classifier_keeps_the_previous_weights(tmp_path, monkeypatch):
    torch.manual_seed(0)
    first, second = EmotionCNN(CNN), EmotionCNN(CNN)
    save_classifier(first, tmp_path, epoch=1)
    disk_full(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        save_classifier(second, tmp_path, epoch=2)
    assert temps(tmp_path) == []
    assert torch.load(tmp_path / "model.pt", weights_only=True)["epoch"] == 1
    torch.testing.assert_close(params(load_classifier(tmp_path)), params(first), rtol=0, atol=0)


BAD_CLASSIFIERS: dict[str, tuple[Callable[[Path], None], str]] = {
    "model.pt truncated": (lambda d: _truncate(d / "model.pt"),
                           r"model\.pt: not weights of the classifier in .*config\.json: the "
                           r"file is truncated.*train-classifier"),
    "model.pt shapes": (_edit_config(lambda p: p.update(features=16)),
                        r"model\.pt: weights do not match .*config\.json \(.*size mismatch.*"
                        r"same training run"),
    "config.json not JSON": (lambda d: _truncate(d / "config.json"),
                             r"config\.json: not valid JSON.*train-classifier"),
    "unknown field": (_edit_config(lambda p: p.update(depth=2)),
                      r"config\.json: unknown ClassifierConfig fields \['depth'\]"),
    "missing field": (_edit_config(lambda p: p.pop("widths")),
                      r"config\.json: missing ClassifierConfig fields \['widths'\]"),
}


@pytest.mark.parametrize("fault", BAD_CLASSIFIERS)
def test_loading_a_damaged_classifier_names_the_file(tmp_path, fault):
    save_classifier(EmotionCNN(CNN), tmp_path, epoch=1)
    load_classifier(tmp_path)
    damage, pattern = BAD_CLASSIFIERS[fault]
    damage(tmp_path)
    with pytest.raises(CheckpointError, match=pattern):
        load_classifier(tmp_path)
