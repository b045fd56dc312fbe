"""The Makefile's command lines, read with `make -n` (a dry run: nothing is installed or
started)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: the CPU wheel index the Makefile names (read from it, so the two cannot drift apart)
CPU_INDEX = re.search(r"^TORCH_INDEX_cpu := (\S+)$", (ROOT / "Makefile").read_text(),
                      re.MULTILINE).group(1)

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def dry_run(target: str, *variables: str, venv: Path) -> list[str]:
    """The commands ``make -n TARGET VARIABLES...`` would run, one per line."""
    result = subprocess.run(["make", "-n", target, f"VENV={venv}", *variables], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=True)
    return result.stdout.splitlines()


def lab_line(lines: list[str]) -> list[str]:
    (line,) = [ln for ln in lines if "-m jupyterlab" in ln]
    return line.split()


@pytest.mark.parametrize("uid", ["0", "1000"])
def test_lab_allows_root_only_as_root(tmp_path, uid):
    args = lab_line(dry_run("lab", f"LAB_UID={uid}", venv=tmp_path / "venv"))
    assert ("--allow-root" in args) == (uid == "0")


def test_lab_as_the_current_user_passes_lab_args(tmp_path):
    lines = dry_run("lab", "LAB_ARGS=--no-browser --ip 0.0.0.0 --port 8899",
                    venv=tmp_path / "venv")
    args = lab_line(lines)
    assert args[-5:] == ["--no-browser", "--ip", "0.0.0.0", "--port", "8899"]
    # rooted at the checkout (notebooks/ and release/ reachable), opening in notebooks/
    assert args[args.index("-m") + 1 : args.index("-m") + 3] == ["jupyterlab",
                                                                 "--ServerApp.root_dir=."]
    assert "--ContentsManager.preferred_dir=notebooks" in args
    # JupyterLab refuses root without --allow-root: the flag follows whoever runs make
    assert ("--allow-root" in args) == (os.geteuid() == 0)


@pytest.mark.parametrize("torch_build", ["cpu", "cuda"])
def test_env_installs_the_chosen_torch_build_only_if_missing(tmp_path, torch_build):
    lines = dry_run("env", f"TORCH={torch_build}", venv=tmp_path / "venv")
    text = "\n".join(lines)
    # torch first, from the chosen index, and only when the environment cannot import one (CI
    # pre-installs it and reaches no index but PyPI)
    assert '-c "import torch" 2>/dev/null ||' in text
    torch_line = next(ln for ln in lines if 'pip install "torch' in ln)
    assert (f"--index-url {CPU_INDEX}" in torch_line) == (torch_build == "cpu")
    assert text.index('pip install "torch') < text.index('pip install -e ".[test]"')


def test_env_default_build_follows_the_gpu(tmp_path):
    torch_line = next(ln for ln in dry_run("env", venv=tmp_path / "venv")
                      if 'pip install "torch' in ln)
    has_gpu = shutil.which("nvidia-smi") is not None
    assert (CPU_INDEX in torch_line) == (not has_gpu)


def test_student_lab_opens_the_release_without_nbgrader(tmp_path):
    lines = dry_run("student-lab", venv=tmp_path / "venv")
    line = next(ln for ln in lines if "-m jupyterlab" in ln)
    assert f'JUPYTER_CONFIG_PATH="{ROOT}/student/jupyter"' in line
    assert "--ContentsManager.preferred_dir=release" in line
    assert any("-m bplf student --out release" in ln for ln in lines), "the release is written"
    env = {**os.environ, "JUPYTER_CONFIG_PATH": str(ROOT / "student" / "jupyter")}
    labext = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"], env=env,
                            capture_output=True, text=True, timeout=120)
    (shown,) = [ln for ln in (labext.stdout + labext.stderr).splitlines()
                if "@jupyter/nbgrader v" in ln]
    assert "disabled" in shown, shown
    server = subprocess.run([sys.executable, "-c", (
        "from jupyter_server.serverapp import ServerApp; app = ServerApp(); "
        "app.parse_command_line([]); app.load_config_file(); "
        "print({k: v for k, v in app.jpserver_extensions.items() if 'nbgrader' in k})")],
        env=env, capture_output=True, text=True, timeout=120, check=True)
    switched = eval(server.stdout.strip().splitlines()[-1])  # a dict literal
    assert len(switched) == 4 and not any(switched.values()), switched


def test_torch_install_fails_fast_and_can_use_a_local_wheel(tmp_path):
    lines = dry_run("env", "TORCH=cpu", venv=tmp_path / "venv")
    torch_line = " ".join(lines[lines.index(next(ln for ln in lines if 'pip install "torch' in ln))
                                 :][:2])
    assert "--timeout 20 --retries 2" in torch_line
    lines = dry_run("env", "TORCH=cpu", "TORCH_PIP_ARGS=--no-index --find-links wheels",
                    venv=tmp_path / "venv")
    assert any("--no-index --find-links wheels" in ln for ln in lines)
