"""bplf.research.quoted: the tables the README, the checkpoints' READMEs and the teacher's guide
quote are rendered from the committed result files, every figure in the prose's sentences
(``bplf.research.quotes``) matches its source, and drift between them is noticed."""

from __future__ import annotations

import json

from bplf.research import quoted, quotes
from bplf.settings import REPO_ROOT


def test_every_quoted_figure_matches_its_result_file():
    assert quoted.stale() == [], "run `python -m bplf render-docs` and commit the result"
    blocks = sum(len(quoted.BLOCK.findall((REPO_ROOT / f).read_text()))
                 for f in quoted.DOCUMENTS if f.endswith(".md"))
    assert blocks >= 4  # the README and the shipped model's README quote the evaluation


def test_a_changed_figure_is_noticed_and_rendered_back(tmp_path):
    doc = tmp_path / "doc.md"
    text = quoted.person_samples("checkpoints/bplf-emotion48")
    doc.write_text("before\n<!-- figures: person-samples checkpoints/bplf-emotion48 -->\n"
                   f"{text}\n<!-- /figures -->\nafter\n")
    assert quoted.stale(("doc.md",), tmp_path) == []
    first_pct = text.split("| ")[9]  # the real faces' face rate
    doc.write_text(doc.read_text().replace(first_pct, "99.9% ", 1))
    assert quoted.stale(("doc.md",), tmp_path) == ["doc.md: person-samples "
                                                  "checkpoints/bplf-emotion48"]
    assert quoted.render(("doc.md",), tmp_path) == [doc]
    assert quoted.stale(("doc.md",), tmp_path) == []
    assert doc.read_text().startswith("before\n") and doc.read_text().endswith("after\n")


def test_every_figure_in_a_sentence_matches_its_source():
    assert quoted.problems(quotes.QUOTES, quotes.SETTINGS) == [], (
        "fix the prose or the figure's source in bplf.research.quotes")
    documents = {q.document for q in quotes.QUOTES}
    assert set(quoted.DOCUMENTS) >= documents >= {"README.md", "notebooks/06_ablations.ipynb"}


def test_written_keeps_the_precision_the_prose_uses():
    assert quoted.written("5.314", 5.313531) == "5.314"
    assert quoted.written("63.4%", 0.634378) == "63.4%"
    assert quoted.written("97%", 0.9676) == "97%"
    assert quoted.written("3.4e-4", 3.3748e-4) == "3.4e-4"
    assert quoted.written("1,098.5", 1098.548) == "1,098.5"


def write_doc(root, text: str) -> str:
    (root / "doc.md").write_text(text)
    return "doc.md"


def test_a_drifted_figure_a_missing_snippet_and_an_unlisted_number_are_noticed(tmp_path):
    source = {"value": 0.5514}
    quote = quoted.Quote("doc.md", "joint rate {55.1%}", lambda: source["value"])
    setting = quoted.Setting("doc.md", "dropout of {15%}")
    doc = write_doc(tmp_path, "A joint rate 55.1% with a dropout of 15%; `code 1.5` and $x = 2.5$\n"
                    "## Section 4.2\n")
    assert quoted.problems([quote], [setting], (doc,), tmp_path) == []
    source["value"] = 0.4  # the result changed, the prose did not
    assert quoted.problems([quote], [setting], (doc,), tmp_path) == [
        "doc.md: 'joint rate {55.1%}' says 55.1%, its source 40.0%"]
    source["value"] = 0.5514
    write_doc(tmp_path, "A joint rate 55.1% with a dropout of 15%, and a new figure 0.73.\n")
    (found,) = quoted.problems([quote], [setting], (doc,), tmp_path)
    assert found.startswith("doc.md:1: 0.73 has no source")
    write_doc(tmp_path, "The joint rate went up with a dropout of 15%.\n")
    assert quoted.problems([quote], [setting], (doc,), tmp_path) == [
        "doc.md: 'joint rate {55.1%}' not found"]


def test_a_notebooks_markdown_is_prose_and_its_code_is_not(tmp_path):
    nb = {"cells": [{"cell_type": "markdown", "source": ["Reaches 5.9 bpd."]},
                    {"cell_type": "code", "source": ["x = 0.123"], "outputs": []}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "nb.ipynb").write_text(json.dumps(nb))
    (found,) = quoted.problems([], [], ("nb.ipynb",), tmp_path)
    assert found.startswith("nb.ipynb:1: 5.9 has no source")
