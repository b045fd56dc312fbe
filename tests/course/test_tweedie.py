"""bplf.course.tweedie: one Tweedie step with autograd is the exact posterior mean of a 1-D
Gaussian mixture, agrees with simulation, and lowers the error to the clean values."""

from __future__ import annotations

import matplotlib
import pytest
import torch

from bplf.course.tweedie import Mixture, check, tweedie
from bplf.course.viz import tweedie_figure

matplotlib.use("Agg")


@pytest.mark.parametrize("sigma", [0.01, 0.05, 0.2])
def test_one_step_is_the_exact_posterior_mean(sigma):
    mixture = Mixture()
    y = torch.linspace(-0.6, 0.6, 301, dtype=torch.float64)
    step = tweedie(lambda v: mixture.log_prob(v, sigma), y, sigma)
    torch.testing.assert_close(step, mixture.posterior_mean(y, sigma), rtol=0, atol=1e-12)


def test_the_posterior_mean_is_what_simulation_says():
    mixture, sigma = Mixture(), 0.05
    clean, noisy = mixture.sample(400_000, sigma, seed=1)
    near = (noisy - 0.1).abs() < 0.005  # noisy values near 0.1: their clean values' mean
    exact = mixture.posterior_mean(torch.tensor([0.1], dtype=torch.float64), sigma)
    assert abs(clean[near].mean() - exact) < 0.005
    result = check(mixture, sigma, n=100_000)
    assert result["gap"] < 1e-12
    assert result["mse_denoised"] < 0.8 * result["mse_noisy"]
    # without noise in the data there is nothing to remove
    assert check(mixture, 1e-6, n=10_000)["mse_noisy"] < 1e-11


def test_without_noise_the_step_changes_nothing_and_the_figure_draws():
    mixture = Mixture()
    y = torch.linspace(-0.4, 0.4, 11, dtype=torch.float64)
    torch.testing.assert_close(mixture.posterior_mean(y, 0.0), y)
    fig = tweedie_figure(mixture, 0.05, n=20_000)
    assert len(fig.axes) == 2 and len(fig.axes[1].lines) == 4
