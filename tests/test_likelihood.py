"""The data transform and bits per dimension: one definition, 8-bit data, the -D log 256 term."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bplf.likelihood import bits_per_dim, bpd_from_log_prob, dequantize, to_uint8
from bplf.model import build_model


def test_dequantize_and_back():
    u = np.random.default_rng(0).integers(0, 256, size=(5, 6, 7), dtype=np.uint8)
    u[0, 0, 0], u[0, 0, 1] = 0, 255
    x = dequantize(u, generator=torch.Generator().manual_seed(1))
    assert x.shape == (5, 1, 6, 7) and x.dtype == torch.float32
    assert float(x.min()) >= -0.5 and float(x.max()) < 0.5
    assert torch.equal(to_uint8(x)[:, 0], torch.from_numpy(u))  # noise stays inside each bin
    # the same seed gives the same numbers; numpy and tensor, 3-d and 4-d inputs agree
    again = dequantize(torch.from_numpy(u)[:, None], generator=torch.Generator().manual_seed(1))
    assert torch.equal(x, again)
    assert not torch.equal(x, dequantize(u, generator=torch.Generator().manual_seed(2)))
    with pytest.raises(TypeError, match="uint8"):
        dequantize(u.astype(np.float32))


def test_bpd_formula_for_eight_bits():
    d = 48 * 48
    # the uniform density on [-0.5, 0.5)^D has log p = 0: exactly 8 bits per dimension
    assert bpd_from_log_prob(0.0, d) == pytest.approx(8.0)
    lp = torch.tensor([-1000.0, 2000.0])
    expected = (-lp + d * math.log(256)) / (d * math.log(2))
    torch.testing.assert_close(bpd_from_log_prob(lp, d), expected)


def test_bits_per_dim_matches_manual_formula(faces, perturb, device):
    torch.manual_seed(0)
    model = build_model("bplf", image_size=8, levels=2, steps_per_level=1, hidden_channels=8,
                        pca="patch")
    model.initialize(faces(256, 8))
    perturb(model)  # class priors differ from the shared base
    model.to(device).train()
    u = to_uint8(faces(10, 8, seed=3))[:, 0].numpy()
    y = np.arange(10) % 7
    result = bits_per_dim(model, u, y, batch_size=4, seed=5, device=device)
    assert model.training  # the caller's mode is restored
    x = dequantize(u, generator=torch.Generator().manual_seed(5)).to(device)
    with torch.no_grad():
        lp = model.log_prob(x, torch.as_tensor(y, device=device)).double()
    manual = float(((-lp + 64 * math.log(256)) / (64 * math.log(2))).mean())
    assert result == pytest.approx(manual, rel=1e-6)
    assert bits_per_dim(model, u, y, batch_size=256, seed=5) == pytest.approx(result, rel=1e-6)
    assert bits_per_dim(model, u, None, seed=5) != pytest.approx(result, rel=1e-9)
