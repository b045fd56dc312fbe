"""bplf.course.guard: finding and stripping what may show a dataset face, and the pre-commit
hook."""

from __future__ import annotations

import base64
import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bplf import cli
from bplf.course.guard import (
    FACE_TAG,
    WIDGET_STATE,
    WIDGET_VIEW,
    dumps,
    find_images,
    is_base64_image,
    leaks,
    main,
    strip,
    strip_file,
)

ROOT = Path(__file__).resolve().parents[2]
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(120)).decode()
JPEG = base64.b64encode(b"\xff\xd8\xff\xe0" + bytes(120)).decode()


def image_output(png: str = PNG) -> dict:
    return {"output_type": "display_data", "metadata": {"image/png": {"width": 300}},
            "data": {"image/png": png, "text/plain": ["<Figure>"]}}


def notebook() -> dict:
    """Every place a notebook can hold an image, and one figure that may stay."""
    code = {"cell_type": "code", "execution_count": 1, "metadata": {}, "outputs": [],
            "source": ["x = 1"]}
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": ["# You will ![](attachment:f.png)"],
         "attachments": {"f.png": {"image/png": PNG}}},
        {**copy.deepcopy(code), "metadata": {"tags": [FACE_TAG]}, "outputs": [image_output()]},
        {**copy.deepcopy(code), "execution_count": 2, "outputs": [image_output()]},
        {**copy.deepcopy(code), "execution_count": 3, "outputs": [
            {"output_type": "display_data", "metadata": {},
             "data": {WIDGET_VIEW: {"model_id": "abc"}, "text/plain": ["VBox()"]}}]},
        {**copy.deepcopy(code), "execution_count": 4,
         "metadata": {"thumb": f"data:image/jpeg;base64,{JPEG}", "keep": "me"}},
    ]
    state = {"abc": {"model_name": "OutputModel",
                     "state": {"outputs": [{"data": {"image/png": PNG}}]}}}
    meta = {"kernelspec": {"name": "python3"}, "cover": [JPEG],
            "widgets": {WIDGET_STATE: {"state": state, "version_major": 2}}}
    return {"cells": cells, "metadata": meta, "nbformat": 4, "nbformat_minor": 5}


def test_find_images_gives_every_place_with_its_location():
    where = {f.where: f for f in find_images(notebook())}
    assert where["cell 2 (code) output 0 image/png"].allowed  # a figure of an untagged cell
    assert {f.where for f in leaks(notebook())} == {
        f"metadata.widgets.{WIDGET_STATE}",
        f"metadata.widgets.{WIDGET_STATE}.state.abc.state.outputs[0].data.image/png",
        "metadata.cover",
        "cell 0 (markdown) attachment 'f.png' image/png",
        "cell 1 (code) output 0 image/png",
        f"cell 3 (code) output 0 {WIDGET_VIEW}",
        "cell 4 (code) metadata.thumb",
    }


def test_inline_images_in_html_and_markdown_are_found():
    nb = notebook()
    nb["cells"][1]["outputs"] = [{"output_type": "display_data", "metadata": {}, "data": {
        "text/html": [f'<img src="data:image/png;base64,{PNG}">']}}]
    nb["cells"][0]["source"] = [f"![face](data:image/png;base64,{PNG})"]
    found = {f.where: f.what for f in leaks(nb)}
    assert found["cell 1 (code) output 0 text/html"] == "inline data: image"
    assert found["cell 0 (markdown) source"] == "inline data: image"


def test_strip_removes_every_leak_and_keeps_the_rest():
    nb = notebook()
    removed = strip(nb)
    assert "metadata.widgets" in removed and "cell 1 outputs (dataset-faces)" in removed
    assert leaks(nb) == []
    cells = nb["cells"]
    assert cells[1]["outputs"] == [] and "attachments" not in cells[0]
    assert cells[2]["outputs"] == [image_output()]  # the figure stays
    assert cells[3]["outputs"][0]["data"] == {"text/plain": ["VBox()"]}
    assert cells[4]["metadata"] == {"keep": "me"}
    assert nb["metadata"] == {"kernelspec": {"name": "python3"}}  # "cover" was an image
    assert strip(nb) == []  # idempotent


def test_base64_images_are_told_from_other_text():
    assert is_base64_image(PNG) and is_base64_image(JPEG)
    assert not is_base64_image("a" * 200)
    assert not is_base64_image("e1223cb53281442f91f9a4b0e1a22b2e")
    assert not is_base64_image("some prose, " * 20)


def test_strip_file_is_atomic_keeps_the_mode_and_skips_clean_files(tmp_path):
    path = tmp_path / "nb.ipynb"
    path.write_text(dumps(notebook()))
    path.chmod(0o644)
    assert strip_file(path)
    assert leaks(json.loads(path.read_text())) == []
    assert path.stat().st_mode & 0o777 == 0o644
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left
    before = path.stat().st_mtime_ns
    assert strip_file(path) == [] and path.stat().st_mtime_ns == before


def test_command_line_checks_and_strips(tmp_path, capsys):
    path = tmp_path / "nb.ipynb"
    path.write_text(dumps(notebook()))
    assert main(["--check", str(path)]) == 1
    assert "cell 1 (code) output 0 image/png" in capsys.readouterr().err
    assert main(["--check", str(path)]) == 1  # --check changed nothing
    with pytest.raises(SystemExit) as exit_:
        cli.main(["strip-notebooks", str(path)])
    assert exit_.value.code == 0
    assert main(["--check", str(path)]) == 0


def test_command_line_fails_on_an_image_it_cannot_strip(tmp_path, capsys):
    nb = notebook()
    nb["cells"][0]["source"] = [f"![face](data:image/png;base64,{PNG})"]
    path = tmp_path / "nb.ipynb"
    path.write_text(dumps(nb))
    assert main([str(path)]) == 1
    assert "cell 0 (markdown) source: inline data: image" in capsys.readouterr().err


needs_make = pytest.mark.skipif(shutil.which("make") is None or shutil.which("git") is None,
                                reason="needs make and git")


@needs_make
def test_make_notebooks_strips_with_the_guard(tmp_path):
    lines = subprocess.run(["make", "-n", "notebooks", f"VENV={tmp_path / 'venv'}"], cwd=ROOT,
                           capture_output=True, text=True, check=True, timeout=60).stdout
    assert "-m bplf strip-notebooks" in lines and "TagRemovePreprocessor" not in lines


def git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1", GIT_AUTHOR_NAME="t",
               GIT_AUTHOR_EMAIL="t@example.org", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.org", BPLF_PYTHON=sys.executable,
               OMP_NUM_THREADS="1")
    return subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True,
                          check=check, timeout=120)


@needs_make
def test_pre_commit_hook_keeps_dataset_faces_out_of_commits(tmp_path):
    repo = tmp_path / "fork"
    repo.mkdir()
    git(repo, "init", "-q")
    shutil.copytree(ROOT / ".githooks", repo / ".githooks")
    # install the hook with the line `make env` runs
    env_lines = subprocess.run(["make", "-n", "env", f"VENV={tmp_path / 'venv'}"], cwd=ROOT,
                               capture_output=True, text=True, check=True, timeout=60).stdout
    (install,) = [ln for ln in env_lines.splitlines() if "core.hooksPath" in ln]
    subprocess.run(["sh", "-c", install], cwd=repo, check=True, env={
        **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
        "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"})
    assert git(repo, "config", "core.hooksPath").stdout.strip() == ".githooks"

    nb = notebook()
    (repo / "nb.ipynb").write_text(dumps(nb))
    git(repo, "add", "nb.ipynb", ".githooks")
    done = git(repo, "commit", "-q", "-m", "a lesson run in JupyterLab")
    assert "stripped cell 1 outputs (dataset-faces)" in done.stderr
    committed = json.loads(git(repo, "show", "HEAD:nb.ipynb").stdout)
    assert committed["cells"][1]["outputs"] == [] and "widgets" not in committed["metadata"]
    assert leaks(committed) == []
    assert committed["cells"][2]["outputs"] == [image_output()]  # figures are kept
    assert json.loads((repo / "nb.ipynb").read_text()) == nb  # the working copy is untouched

    # `git commit -a` (a temporary index) is guarded too
    nb["cells"][2]["source"] = ["x = 2"]
    (repo / "nb.ipynb").write_text(dumps(nb))
    git(repo, "commit", "-q", "-a", "-m", "edit")
    committed = json.loads(git(repo, "show", "HEAD:nb.ipynb").stdout)
    assert committed["cells"][2]["source"] == ["x = 2"] and leaks(committed) == []

    # an image the hook cannot strip (in a cell's source) refuses the commit
    head = git(repo, "rev-parse", "HEAD").stdout
    nb["cells"][0]["source"] = [f"![face](data:image/png;base64,{PNG})"]
    (repo / "nb.ipynb").write_text(dumps(nb))
    git(repo, "add", "nb.ipynb")
    refused = git(repo, "commit", "-q", "-m", "inline face", check=False)
    assert refused.returncode != 0 and "commit refused" in refused.stderr
    assert "cell 0 (markdown) source: inline data: image" in refused.stderr
    assert git(repo, "rev-parse", "HEAD").stdout == head
