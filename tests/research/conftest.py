"""Shared fixtures of the research harness's tests: the conditioning grid trained at the
"quick" budget on the synthetic faces and scored, once per test module."""

from __future__ import annotations

import pytest

from bplf.research.conditioning import FidelityConfig
from bplf.research.experiments import run_grid
from bplf.research.scoring import evaluate_grid

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


