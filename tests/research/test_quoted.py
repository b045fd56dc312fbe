"""bplf.research.quoted: the figures the README, the checkpoints' READMEs and the teacher's guide
quote are rendered from the committed result files, and drift between them is noticed."""

from __future__ import annotations

from bplf.research import quoted
from bplf.settings import REPO_ROOT


def test_every_quoted_figure_matches_its_result_file():
    assert quoted.stale() == [], "run `python -m bplf render-docs` and commit the result"
    blocks = sum(len(quoted.BLOCK.findall((REPO_ROOT / f).read_text()))
                 for f in quoted.DOCUMENTS)
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
