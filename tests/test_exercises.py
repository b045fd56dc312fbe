"""The exercise checks (bplf.course.exercises): a right answer passes, each recognised mistake gets
its
own message, and an unsolved stub fails with "not written yet"."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Normal

from bplf.course import exercises as ex
from bplf.data import EMOTIONS
from bplf.likelihood import bpd_from_log_prob
from bplf.research.stats import compare, verdict


def stub(*_, **__):
    raise NotImplementedError()


def test_every_check_is_an_assertion_and_reports_a_stub():
    assert issubclass(ex.ExerciseError, AssertionError)
    for name, check in ex.CHECKS.items():
        args = {"check_logdet": (torch.sinh, stub, torch.randn(2, 3)),
                "check_invertible_module": (Stub(), torch.randn(2, 2, 2, 2))}.get(name, (stub,))
        with pytest.raises(ex.ExerciseError, match="not written yet"):
            check(*args)


class Stub(nn.Module):
    def forward(self, x, cond=None):
        raise NotImplementedError()


# -- 01 -----------------------------------------------------------------------------------------
def read_raf(text, code_map=ex.RAFDB_CODES, split_fn=lambda n: n.split("_")[0]):
    rows = []
    for line in text.splitlines():
        if line.strip():
            name, code = line.split()
            rows.append((name, split_fn(name), EMOTIONS.index(code_map[int(code)])))
    return rows


def test_label_reader():
    ex.check_label_reader(read_raf)
    with pytest.raises(ex.ExerciseError, match="own order, not FER-2013's"):
        # the codes read as FER-2013's order: code c -> index c - 1
        ex.check_label_reader(lambda t: read_raf(t, code_map=dict(enumerate(EMOTIONS, 1))))
    with pytest.raises(ex.ExerciseError, match="the file name's prefix"):
        ex.check_label_reader(lambda t: read_raf(t, split_fn=lambda n: "train"))
    with pytest.raises(ex.ExerciseError, match="skip blank lines"):
        ex.check_label_reader(lambda t: read_raf(t)[:-1])
    with pytest.raises(ex.ExerciseError, match="an index into bplf.data.EMOTIONS"):
        ex.check_label_reader(lambda t: [(n, s, EMOTIONS[i]) for n, s, i in read_raf(t)])


def split_people(subjects, seed=0, by_face=False, rng_seed=None):
    if by_face:
        order = np.random.default_rng(seed).permutation(len(subjects))
        out = np.empty(len(subjects), dtype=object)
        n = round(0.15 * len(subjects))
        out[order[:n]], out[order[n:2 * n]], out[order[2 * n:]] = "val", "test", "train"
        return out.astype(str)
    people = np.unique(subjects)
    rng = np.random.default_rng(seed if rng_seed is None else rng_seed())
    order = rng.permutation(len(people))
    n = round(0.15 * len(people))
    of = {people[i]: "val" if r < n else "test" if r < 2 * n else "train"
          for r, i in enumerate(order)}
    return np.array([of[s] for s in subjects])


def test_subject_split():
    ex.check_subject_split(split_people)
    with pytest.raises(ex.ExerciseError, match="split the people"):
        ex.check_subject_split(lambda s, seed=0: split_people(s, seed, by_face=True))
    counter = iter(range(100))
    with pytest.raises(ex.ExerciseError, match="same seed gave different splits"):
        ex.check_subject_split(lambda s, seed=0: split_people(s, seed,
                                                              rng_seed=lambda: next(counter)))
    with pytest.raises(ex.ExerciseError, match="fractions apply to people"):
        ex.check_subject_split(lambda s, seed=0: np.where(np.isin(s, np.unique(s)[:2]), "val",
                                                          "train"))


# -- 02 -----------------------------------------------------------------------------------------
A, B = 1.5, 0.5


def sa(x):
    return torch.sinh(A * torch.asinh(x) - B)


def sa_log_deriv(x):
    u = A * torch.asinh(x) - B
    return math.log(A) + torch.log(torch.cosh(u)) - 0.5 * torch.log1p(x**2)


def test_check_logdet():
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    ex.check_logdet(sa, lambda v: sa_log_deriv(v).flatten(1).sum(1), x)
    with pytest.raises(ex.ExerciseError, match="sum over every dimension but the batch"):
        ex.check_logdet(sa, sa_log_deriv, x)
    with pytest.raises(ex.ExerciseError, match="do not sum .* over the batch"):
        ex.check_logdet(sa, lambda v: sa_log_deriv(v).sum(), x)
    with pytest.raises(ex.ExerciseError, match="wrong sign"):
        ex.check_logdet(sa, lambda v: -sa_log_deriv(v).flatten(1).sum(1), x)
    with pytest.raises(ex.ExerciseError, match="D log a is missing"):
        ex.check_logdet(sa, lambda v: (sa_log_deriv(v) - math.log(A)).flatten(1).sum(1), x,
                        constants={"D log a": 6 * math.log(A)})
    with pytest.raises(ex.ExerciseError, match="same constant"):
        ex.check_logdet(sa, lambda v: sa_log_deriv(v).flatten(1).sum(1) + 0.3, x)
    with pytest.raises(ex.ExerciseError, match="nan or inf"):
        ex.check_logdet(lambda v: -v**3 - v, lambda v: torch.log(-3 * v**2 - 1).flatten(1).sum(1),
                        x)


def flow_lp(layers, x, sign=1.0, base_only=False, const=True):
    z, total = x, torch.zeros(len(x), dtype=x.dtype)
    for layer in layers:
        z, ld = layer(z)
        total = total + ld
    base = Normal(0.0, 1.0).log_prob(z) if const else -0.5 * z**2
    return base.flatten(1).sum(1) + (0 if base_only else sign * total)


def test_check_flow_log_prob():
    ex.check_flow_log_prob(flow_lp)
    with pytest.raises(ex.ExerciseError, match="add the log-dets"):
        ex.check_flow_log_prob(lambda ls, x: flow_lp(ls, x, base_only=True))
    with pytest.raises(ex.ExerciseError, match="you subtracted the log-dets"):
        ex.check_flow_log_prob(lambda ls, x: flow_lp(ls, x, sign=-1.0))
    with pytest.raises(ex.ExerciseError, match=r"constant -D/2 log\(2 pi\) is missing"):
        ex.check_flow_log_prob(lambda ls, x: flow_lp(ls, x, const=False))


# -- 03 -----------------------------------------------------------------------------------------
def test_check_lu_logdet():
    ex.check_lu_logdet(lambda conv, h, w: h * w * conv.log_s.sum())
    with pytest.raises(ex.ExerciseError, match="multiply by H \\* W"):
        ex.check_lu_logdet(lambda conv, h, w: conv.log_s.sum())
    with pytest.raises(ex.ExerciseError, match="not a dense determinant"):
        ex.check_lu_logdet(lambda conv, h, w: h * w * torch.linalg.slogdet(conv.weight())[1])
    with pytest.raises(ex.ExerciseError, match="log\\|s\\|"):
        ex.check_lu_logdet(lambda conv, h, w: h * w * conv.log_s.exp().sum())


class Additive(nn.Module):
    def __init__(self, mistake: str = ""):
        super().__init__()
        self.t = nn.Conv2d(2, 2, 3, padding=1)
        self.mistake = mistake

    def forward(self, x, cond=None):
        a, b = x[:, :2], x[:, 2:]
        y = torch.cat([a + self.t(b), b], 1)
        if self.mistake == "identity":
            y = x
        if self.mistake == "drop":
            y = y[:, :2]
        logdet = x.new_zeros(len(x))
        if self.mistake == "logdet":
            logdet = logdet + 1.0
        if self.mistake == "scalar":
            logdet = logdet.sum()
        return y, logdet

    def inverse(self, y, cond=None):
        a, b = y[:, :2], y[:, 2:]
        sign = 1 if self.mistake == "inverse" else -1
        return torch.cat([a + sign * self.t(b), b], 1)


def test_check_invertible_module():
    x = torch.randn(3, 4, 3, 3, dtype=torch.float64)
    ex.check_invertible_module(Additive(), x)
    for mistake, message in (("inverse", "inverse\\(forward\\(x\\)\\) differs"),
                             ("identity", "unchanged"), ("drop", "x's shape"),
                             ("logdet", "same constant"), ("scalar", "over the batch")):
        with pytest.raises(ex.ExerciseError, match=message):
            ex.check_invertible_module(Additive(mistake), x)


# -- 04 -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small():
    return ex.tiny_model(), ex.tiny_images(8, seed=1), torch.arange(8) % 7


def bpd_variants(model, x, y, variant=""):
    with torch.no_grad():
        lp = model.log_prob(x, y).double()
    d = x[0].numel()
    num = -lp + (0 if "nodeq" in variant else d * math.log(256))
    den = (1 if "image" in variant else d) * (1 if "nats" in variant else math.log(2))
    return float((num / den).mean())


def test_check_bpd(small):
    model, x, y = small
    ex.check_bpd(bpd_variants, model, x, y)
    for variant, message in (("nodeq", "did you forget the dequantisation term"),
                             ("nats", "ln 2 times"), ("image", "D = 64 times too large"),
                             ("nodeq nats", "nats and the D log 256 term is missing")):
        with pytest.raises(ex.ExerciseError, match=message):
            ex.check_bpd(lambda m, xx, yy, v=variant: bpd_variants(m, xx, yy, v), model, x, y)
    with pytest.raises(ex.ExerciseError, match="one number, the mean"):
        ex.check_bpd(lambda m, xx, yy: bpd_from_log_prob(m.log_prob(xx, yy), 64).detach(),
                     model, x, y)


def step(model, opt, x, y, zero=True, sign=1.0):
    if zero:
        opt.zero_grad()
    loss = bpd_from_log_prob(model.log_prob(x, y), x[0].numel()).mean()
    (sign * loss).backward()
    opt.step()
    return loss.item()


def test_check_train_step():
    ex.check_train_step(step)
    with pytest.raises(ex.ExerciseError, match="zero_grad"):
        ex.check_train_step(lambda m, o, x, y: step(m, o, x, y, zero=False))
    with pytest.raises(ex.ExerciseError, match="minimise -log p"):
        ex.check_train_step(lambda m, o, x, y: step(m, o, x, y, sign=-1.0))
    with pytest.raises(ex.ExerciseError, match="parameters did not change"):
        ex.check_train_step(lambda m, o, x, y: bpd_from_log_prob(m.log_prob(x, y),
                                                                 64).mean().item())
    with pytest.raises(ex.ExerciseError, match="that is nats"):
        ex.check_train_step(lambda m, o, x, y: step(m, o, x, y) * math.log(2))


# -- 05 -----------------------------------------------------------------------------------------
def lerp(model, xa, xb, steps, top_only=False, pixels=False):
    t = torch.linspace(0, 1, steps).view(-1, 1, 1, 1)
    if pixels:
        return xa + t * (xb - xa)
    with torch.no_grad():
        za, zb = model.encode(xa), model.encode(xb)
        zs = [a + t * (b - a) for a, b in zip(za, zb, strict=True)]
        if top_only:
            zs = [a.expand_as(z) for a, z in zip(za[:-1], zs[:-1], strict=True)] + zs[-1:]
        return model.decode(zs)


def test_check_interpolation():
    ex.check_interpolation(lerp)
    with pytest.raises(ex.ExerciseError, match="cross-fade in pixel space"):
        ex.check_interpolation(lambda m, a, b, s: lerp(m, a, b, s, pixels=True))
    with pytest.raises(ex.ExerciseError, match="top latent only"):
        ex.check_interpolation(lambda m, a, b, s: lerp(m, a, b, s, top_only=True))
    with pytest.raises(ex.ExerciseError, match="endpoints included"):
        ex.check_interpolation(lambda m, a, b, s: lerp(m, a, b, s - 1))


def swap(model, x, source, target, scale=True):
    with torch.no_grad():
        zs = model.encode(x)
        mu_s, log_s = model.top_prior.params(source)
        mu_t, log_t = model.top_prior.params(target)
        factor = torch.exp(log_t - log_s) if scale else 1.0
        return model.decode([*zs[:-1], mu_t + factor * (zs[-1] - mu_s)])


def test_check_prior_edit():
    ex.check_prior_edit(swap)
    with pytest.raises(ex.ExerciseError, match="from the target to the source"):
        ex.check_prior_edit(lambda m, x, s, t: swap(m, x, t, s))
    with pytest.raises(ex.ExerciseError, match="shifted the mean only"):
        ex.check_prior_edit(lambda m, x, s, t: swap(m, x, s, t, scale=False))
    with pytest.raises(ex.ExerciseError, match="returns the input faces"):
        ex.check_prior_edit(lambda m, x, s, t: x)


# -- 06 -----------------------------------------------------------------------------------------
def my_compare(values, a, b, ddof=1, sd=False, k=2.0):
    va = values.loc[values["config"] == a, "value"]
    vb = values.loc[values["config"] == b, "value"]
    diff = va.mean() - vb.mean()
    n = 1 if sd else len(va)
    se = math.sqrt(va.var(ddof=ddof) / n + vb.var(ddof=ddof) / n)
    return {"diff": diff, "se": se, "within_noise": abs(diff) < k * se}


def test_check_compare():
    ex.check_compare(my_compare)
    with pytest.raises(ex.ExerciseError, match="wrong sign"):
        ex.check_compare(lambda v, a, b: my_compare(v, b, a))
    with pytest.raises(ex.ExerciseError, match="seeds' standard deviation"):
        ex.check_compare(lambda v, a, b: my_compare(v, a, b, sd=True))
    with pytest.raises(ex.ExerciseError, match="population variance"):
        ex.check_compare(lambda v, a, b: my_compare(v, a, b, ddof=0))
    with pytest.raises(ex.ExerciseError, match="\\|diff\\| < 2 se"):
        ex.check_compare(lambda v, a, b: my_compare(v, a, b, k=0.5))


def test_check_verdict():
    def right(values, claimed):
        return verdict([compare(values, claimed, o) for o in values["config"].unique()
                        if o != claimed])

    def means_only(values, claimed):
        m = values.groupby("config")["value"].mean()
        return "replicates" if m.idxmin() == claimed else "does not replicate"

    ex.check_verdict(right)
    with pytest.raises(ex.ExerciseError, match="within 2 standard errors is noise"):
        ex.check_verdict(means_only)
