"""The checks of notebook 05's exercises: interpolation between two faces' latents, an edit by
re-expressing the top prior."""

from __future__ import annotations

from collections.abc import Callable

import torch

from bplf.course.exercises.checking import _as_tensor, _call, _fail, _grading, _ok
from bplf.course.exercises.lesson04 import tiny_images, tiny_model
from bplf.editing import edit_expression, interpolate


def check_interpolation(fn: Callable) -> None:
    """``fn(model, x_a, x_b, steps)`` decodes ``steps`` points on the line between the latents
    of two faces (endpoints included) -> (steps, C, H, W)."""
    with _grading("your interpolation"):
        model = tiny_model(seed=4)
        faces = tiny_images(2, seed=5)
        steps = 5
        with torch.no_grad():
            ref = interpolate(model, faces[0], faces[1], steps=steps)
            got = _as_tensor(_call(fn, model, faces[:1], faces[1:], steps), "your path")
        ref = ref.double()
        if got.shape != ref.shape:
            _fail(f"return the {steps} decoded faces as one tensor of shape {tuple(ref.shape)}, "
                  f"got {tuple(got.shape)} (endpoints included: torch.linspace(0, 1, steps))")
        pixels = faces[:1].double() + torch.linspace(0, 1, steps, dtype=torch.float64).view(
            -1, 1, 1, 1) * (faces[1:] - faces[:1]).double()
        if (got - pixels).abs().max() < 1e-4:
            _fail("that is a cross-fade in pixel space: encode both faces, interpolate every "
                  "latent (model.encode returns a list), then decode")
        with torch.no_grad():
            za, zb = model.encode(faces[:1]), model.encode(faces[1:])
            t = torch.linspace(0, 1, steps).view(-1, 1, 1, 1)
            top_only = model.decode([a.expand(steps, *a.shape[1:]) for a in za[:-1]]
                                    + [za[-1] + t * (zb[-1] - za[-1])]).double()
        if (got - top_only).abs().max() < 1e-4:
            _fail("you interpolated the top latent only: interpolate every entry of the list "
                  "model.encode returns, the factored-out latents too, then decode")
        if (got[0] - ref[0]).abs().max() > 1e-4 or (got[-1] - ref[-1]).abs().max() > 1e-4:
            _fail("the path should start at x_a and end at x_b (decode(encode(x)) = x): include "
                  "both endpoints, t = 0 and t = 1")
        if (got - ref).abs().max() > 1e-4:
            _fail("the path differs from the latent interpolation: points a + t (b - a) for t "
                  "evenly spaced from 0 to 1, on every latent, then decode")
    _ok(f"{steps} faces on the straight line between the two latents")


def check_prior_edit(fn: Callable) -> None:
    """``fn(model, x, source, target)`` re-expresses faces of emotion ``source`` as ``target``
    by swapping the class of the top latent's prior (``edit_expression(method="prior")``)."""
    with _grading("your edit"):
        model = tiny_model(seed=6)
        with torch.no_grad():
            model.top_prior.class_log_std.normal_(0, 0.3)
            model.top_prior.class_mean.normal_(0, 0.5)
        x = tiny_images(3, seed=7)
        source, target = 3, 5
        with torch.no_grad():
            ref = edit_expression(model, x, source, target, 1.0, method="prior").double()
            back = edit_expression(model, x, target, source, 1.0, method="prior").double()
            got = _as_tensor(_call(fn, model, x, source, target), "your edit")
            zs = model.encode(x)
            mu_s, _ = model.top_prior.params(source)
            mu_t, _ = model.top_prior.params(target)
            shifted = model.decode([*zs[:-1], zs[-1] + mu_t - mu_s]).double()
        if got.shape != ref.shape:
            _fail(f"return the edited faces, shape {tuple(ref.shape)} (decode the moved latents),"
                  f" got {tuple(got.shape)}")
        if (got - x.double()).abs().max() < 1e-5:
            _fail("your edit returns the input faces: move the top latent to the target's prior")
        if (got - back).abs().max() < 1e-4:
            _fail("you moved from the target to the source: standardise under the source's prior,"
                  " then re-express under the target's")
        if (got - shifted).abs().max() < 1e-4:
            _fail("you shifted the mean only: also rescale by sigma_target / sigma_source, "
                  "z' = mu_t + exp(log_t - log_s) * (z - mu_s)")
        if (got - ref).abs().max() > 1e-4:
            _fail("the edited faces differ from the re-expressed ones: move only the top latent "
                  "(the last entry of model.encode's list), z' = mu_t + sigma_t / sigma_s * "
                  "(z - mu_s), keep the other latents, and decode")
    _ok("the edit re-expresses the faces under the target emotion's prior")
