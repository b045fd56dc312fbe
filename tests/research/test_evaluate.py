"""The one evaluator's tidy rows: every figure of an ``evaluate_checkpoint`` report, one per row,
for reports of today's format and of the older one (no guidance, no person columns, no edits)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bplf.pretrained import read_evaluation
from bplf.research.evaluate import TIDY_COLUMNS, tidy_rows
from bplf.research.experiments import RESULTS_DIR
from bplf.research.metrics.fidelity import CEILING, FLOOR

SOURCE = {"n": 10, "marginal_bpd": 5.0, "conditional_bpd": 4.9,
          "generative_accuracy": {"balanced_accuracy": 0.3}}


def report() -> dict:
    """A small report: two sources, the ceiling, a guided and an unguided setting, the floor,
    one edit and the references."""
    person = {"face_rate": 0.5, "joint_rate": 0.2, "pair_ssim": 0.1, "precision": 0.7,
              "recall": 0.4}
    sample = {"n": 70, "accuracy": 0.25, "fd": 3.0, **person}
    return {"checkpoint": "run", "sources": {"fer2013": SOURCE,
                                             "jaffe": {**SOURCE, "n": 30, "marginal_bpd": 6.0}},
            "overall_marginal_bpd": 5.75, "round_trip": {"n": 40, "max_abs_error": 1e-6},
            "round_trip_max_abs_error": 1e-6,
            "fidelity": [{**sample, "generator": CEILING, "temperature": None, "guidance": None},
                         {**sample, "generator": "run", "temperature": 0.7,
                          "guidance": "unguided"},
                         {**sample, "generator": "run", "temperature": 0.7,
                          "guidance": "prior 3", "accuracy": 0.4},
                         {**sample, "generator": FLOOR, "temperature": 1.0,
                          "guidance": "unguided"}],
            "edits": [{"method": "swap", "guidance": "couplings 2", "intensity": 1.5, "n": 60,
                       "hit_rate": 0.3, "face_rate": 0.4, "joint_rate": 0.1, "ssim": 0.7,
                       "rmse": 40.0, "keeps_person": True}],
            "reference": {"same_person": {"n": 2000, "ssim": 0.62, "rmse": 37.0},
                          "edit_inputs": {"n": 10, "face_rate": 0.55}}}


def test_every_figure_of_a_report_is_one_row():
    rows = pd.DataFrame(tidy_rows(report()))
    assert list(rows.columns) == TIDY_COLUMNS

    def value(metric: str, **where) -> float:
        hit = rows[rows["metric"] == metric]
        for column, v in where.items():
            hit = hit[hit[column] == v]
        assert len(hit) == 1, (metric, where)
        return hit["value"].iloc[0]

    assert value("test_bpd", source="jaffe") == 6.0 and value("test_bpd", source="all") == 5.75
    assert value("generative_accuracy", source="fer2013") == 0.3
    assert rows.loc[(rows["metric"] == "test_bpd") & (rows["source"] == "all"), "n"].item() == 40
    assert value("round_trip") == 1e-6
    assert value("sample_accuracy", generator="model", guidance="prior 3") == 0.4
    assert value("sample_accuracy", generator="real") == 0.25
    assert value("sample_fd", generator="floor", temperature=1.0) == 3.0
    assert value("sample_joint_rate", generator="model", guidance="unguided") == 0.2
    assert value("edit_ssim", method="swap", guidance="couplings 2", intensity=1.5) == 0.7
    assert value("edit_hit_rate", method="swap") == 0.3
    assert value("same_person_ssim") == 0.62 and value("edit_input_face_rate") == 0.55
    # 2 sources x 3 + overall + round trip; 4 settings x 7; 5 per edit; 3 references
    assert len(rows) == 8 + 4 * 7 + 5 + 3


def test_an_old_report_reads_as_unguided_samples_without_person_columns():
    path = RESULTS_DIR / "gpu" / "fidelity" / "baselines-glow.json"
    old = json.loads(path.read_text())
    rows = pd.DataFrame(tidy_rows(old))
    samples = rows[rows["metric"].str.startswith("sample_")]
    assert set(samples["metric"]) == {"sample_accuracy", "sample_fd"}
    assert set(samples.loc[samples["generator"] == "model", "guidance"]) == {"unguided"}
    model = samples[(samples["generator"] == "model") & (samples["metric"] == "sample_fd")]
    assert list(model["value"]) == [r["fd"] for r in old["fidelity"]
                                    if r["generator"] == old["checkpoint"]]
    assert rows.loc[rows["metric"] == "round_trip", "value"].item() == pytest.approx(
        old["round_trip_max_abs_error"])


def test_old_edits_read_per_intensity():
    """Edits written before ``edit_sweep`` (hit-rates per intensity, the identity at one)."""
    old = {**report(), "edits": [{"method": "mean", "guidance": 1.0,
                                  "hit_rate": {"0.0": 1 / 7, "1.0": 0.2},
                                  "identity": {"n": 20, "intensity": 1.0, "edit_ssim": 0.9,
                                               "edit_rmse": 17.0}}]}
    rows = pd.DataFrame(tidy_rows(old))
    edits = rows[rows["metric"].str.startswith("edit_") & (rows["method"] == "mean")]
    assert set(edits["guidance"]) == {"unguided"}
    hits = edits[edits["metric"] == "edit_hit_rate"]
    assert list(hits["intensity"]) == [0.0, 1.0] and list(hits["value"]) == [1 / 7, 0.2]
    assert (hits["n"] == 140).all()  # 20 faces, each toward all 7 emotions
    kept = edits[edits["metric"] == "edit_ssim"]
    assert list(kept["value"]) == [0.9] and list(kept["intensity"]) == [1.0]


def test_the_shipped_evaluation_has_a_row_per_edit_figure():
    shipped = read_evaluation()
    rows = pd.DataFrame(tidy_rows(shipped))
    hits = rows[rows["metric"] == "edit_hit_rate"]
    assert len(hits) == sum(len(e["hit_rate"]) if "identity" in e else 1
                            for e in shipped["edits"])
    assert set(hits["method"]) == {e["method"] for e in shipped["edits"]}


def test_the_shortlist_narrows_the_person_sweep():
    """Every setting of the shortlist is one the person sweep measures; it keeps the plain
    samples at each temperature and part 1's recommended setting and edit."""
    from bplf.guidance import Guidance
    from bplf.research.evaluate import SWEEPS, person_sweep, shortlist_sweep

    methods = ("mean", "prior", "swap", "reexpress", "gradient")
    person, short = person_sweep(methods), shortlist_sweep(methods)
    assert set(SWEEPS) == {"person", "shortlist"}
    assert set(short.samples) < set(person.samples)
    assert {(t, Guidance()) for t in (0.7, 0.85, 1.0)} | {(0.85, Guidance(prior=3, coupling=2))} \
        <= set(short.samples)
    assert {(m, g) for m, g, _ in short.edits} < {(m, g) for m, g, _ in person.edits}
    assert ("reexpress", Guidance(prior=3, coupling=2), (0.5, 1.0, 1.5)) in short.edits
    # denoised as the model samples by default (only a noise-trained model takes the step)
    assert short.denoise == person.denoise == (None,)
    assert short.gradient_faces == person.gradient_faces == 14
    assert shortlist_sweep(("swap",)).edits == [("swap", Guidance(coupling=4), (0.5, 1.0, 1.5))]
