"""Tests for molvae.training.losses (ELBO terms, free bits, KL schedules) and molvae.training.diagnostics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from molvae.training.diagnostics import active_units, mutual_information
from molvae.training.losses import (
    SCHEDULES,
    elbo_loss,
    free_bits_kl,
    kl_beta,
    kl_per_dim,
    reconstruction_nll,
)


# ----------------------------------------------------------------------------- helpers
def _posterior(requires_grad: bool = True):
    """A (B=4, D=3) posterior whose batch-mean KL per dimension is ~0.0015, ~1.01 and ~0.42.

    Dimension 0 is nearly the prior, dimensions 1 and 2 are far from it.
    """
    mu = torch.tensor(
        [[0.05, 1.5, -0.8], [-0.06, -1.2, 0.9], [0.04, 1.8, 1.1], [-0.02, -0.9, -0.7]], dtype=torch.float64
    )
    logvar = torch.tensor(
        [[0.05, -0.5, -0.4], [-0.04, -0.3, -0.2], [0.03, -0.6, -0.5], [-0.05, -0.2, -0.3]], dtype=torch.float64
    )
    return mu.clone().requires_grad_(requires_grad), logvar.clone().requires_grad_(requires_grad)


def _kl_grads(free_bits: float):
    mu, logvar = _posterior()
    free_bits_kl(kl_per_dim(mu, logvar), free_bits).backward()
    return mu.grad, logvar.grad


# ----------------------------------------------------------------------------- KL and free bits
def test_kl_per_dim_matches_closed_form():
    mu = torch.tensor([[0.0, 1.0, 0.0, -2.0, 0.5]])
    logvar = torch.tensor([[0.0, 0.0, math.log(2.0), math.log(0.25), -1.0]])
    expected = [
        0.0,  # the prior itself
        0.5,  # mu^2 / 2
        0.5 * (2.0 - 1.0 - math.log(2.0)),
        0.5 * (4.0 + 0.25 - 1.0 - math.log(0.25)),
        0.5 * (0.25 + math.exp(-1.0) - 1.0 + 1.0),
    ]
    got = kl_per_dim(mu, logvar)
    assert got.shape == (1, 5)
    assert torch.allclose(got[0], torch.tensor(expected), atol=1e-6)
    # and it agrees with torch.distributions on random values
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, torch.exp(0.5 * logvar)), torch.distributions.Normal(0.0, 1.0)
    )
    assert torch.allclose(kl_per_dim(mu, logvar), ref, atol=1e-5)
    assert (kl_per_dim(mu, logvar) >= 0).all()


def test_free_bits_blocks_gradient_below_threshold_only():
    mu, logvar = _posterior(requires_grad=False)
    per_dim = kl_per_dim(mu, logvar).mean(0)
    lam = 0.25
    assert per_dim[0] < lam < per_dim[2] < per_dim[1]  # the premise of the test

    plain_mu, plain_lv = _kl_grads(0.0)
    fb_mu, fb_lv = _kl_grads(lam)
    # the plain KL gradient is non-zero everywhere (so "zero" below is not trivial)
    assert (plain_mu[:, 0].abs() > 1e-4).all() and (plain_lv[:, 0].abs() > 1e-4).all()
    # below lambda: no gradient from the KL term
    assert torch.equal(fb_mu[:, 0], torch.zeros(4, dtype=torch.float64))
    assert torch.equal(fb_lv[:, 0], torch.zeros(4, dtype=torch.float64))
    # above lambda: exactly the plain KL gradient
    assert torch.allclose(fb_mu[:, 1:], plain_mu[:, 1:], atol=1e-12)
    assert torch.allclose(fb_lv[:, 1:], plain_lv[:, 1:], atol=1e-12)
    # analytic check of the plain gradient: d/dmu mean_b KL = mu / B; d/dlogvar = (exp(lv) - 1) / (2B)
    assert torch.allclose(plain_mu, mu / 4, atol=1e-12)
    assert torch.allclose(plain_lv, (logvar.exp() - 1) / 8, atol=1e-12)


def test_free_bits_value():
    mu, logvar = _posterior(requires_grad=False)
    kl = kl_per_dim(mu, logvar)
    per_dim = kl.mean(0)
    assert torch.allclose(free_bits_kl(kl, 0.0), per_dim.sum())
    lam = 0.25
    expected = lam + per_dim[1] + per_dim[2]  # dimension 0 is lifted to lambda
    assert torch.allclose(free_bits_kl(kl, lam), expected)
    # a threshold above every dimension: a constant D * lambda, no gradient at all
    mu, logvar = _posterior()
    out = free_bits_kl(kl_per_dim(mu, logvar), 10.0)
    assert float(out.detach()) == pytest.approx(30.0)
    out.backward()
    assert torch.count_nonzero(mu.grad) == 0 and torch.count_nonzero(logvar.grad) == 0


def test_elbo_loss_free_bits_gradient_through_beta():
    """Through elbo_loss: mu's gradient is beta * (plain KL gradient) above lambda, 0 below."""
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 5, 7, generator=g)
    targets = torch.randint(1, 7, (4, 5), generator=g)
    beta, lam = 0.3, 0.25
    mu, logvar = _posterior()
    out = elbo_loss(logits, targets, mu, logvar, beta=beta, free_bits=lam)
    out["loss"].backward()
    plain_mu, plain_lv = _kl_grads(0.0)
    assert torch.count_nonzero(mu.grad[:, 0]) == 0 and torch.count_nonzero(logvar.grad[:, 0]) == 0
    assert torch.allclose(mu.grad[:, 1:].double(), beta * plain_mu[:, 1:], atol=1e-6)
    assert torch.allclose(logvar.grad[:, 1:].double(), beta * plain_lv[:, 1:], atol=1e-6)
    # the reported kl is the plain one, not the free-bits one
    mu2, lv2 = _posterior(requires_grad=False)
    assert float(out["kl"].detach()) == pytest.approx(float(kl_per_dim(mu2, lv2).sum(1).mean()), rel=1e-6)


def test_elbo_loss_matches_hand_computation():
    g = torch.Generator().manual_seed(0)
    b, t, v, d = 3, 6, 9, 4
    logits = torch.randn(b, t, v, generator=g)
    targets = torch.randint(1, v, (b, t), generator=g)
    targets[0, 4:] = 0  # padding
    targets[2, 2:] = 0
    mu, logvar = torch.randn(b, d, generator=g), torch.randn(b, d, generator=g)
    beta = 0.7
    out = elbo_loss(logits, targets, mu, logvar, beta=beta, free_bits=0.0)

    logp = F.log_softmax(logits, dim=-1).gather(2, targets.unsqueeze(2)).squeeze(2)
    recon = -(logp * (targets != 0)).sum(1).mean()
    kl_b = (0.5 * (mu**2 + logvar.exp() - 1 - logvar)).sum(1)  # summed over dimensions
    kl = kl_b.mean()  # averaged over the batch
    assert float(out["recon"]) == pytest.approx(float(recon), rel=1e-5)
    assert float(out["kl"]) == pytest.approx(float(kl), rel=1e-5)
    assert float(out["loss"]) == pytest.approx(float(recon + beta * kl), rel=1e-5)
    assert out["kl_per_dim"].shape == (d,)
    assert torch.allclose(out["kl_per_dim"], (0.5 * (mu**2 + logvar.exp() - 1 - logvar)).mean(0), atol=1e-6)
    assert float(out["kl_per_dim"].sum()) == pytest.approx(float(kl), rel=1e-5)


def test_reconstruction_nll_masks_padding():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 6, generator=g)
    targets = torch.tensor([[4, 5, 2, 0, 0], [3, 2, 0, 0, 0], [1, 2, 3, 4, 2]])
    base = reconstruction_nll(logits, targets)
    assert base.shape == (3,)
    pad = targets == 0
    changed = logits.clone()
    changed[pad] = torch.randn(int(pad.sum()), 6, generator=g) * 100
    assert torch.equal(reconstruction_nll(changed, targets), base)
    # changing a real position does change the NLL of that molecule only
    changed2 = logits.clone()
    changed2[1, 0] += torch.randn(6, generator=g) * 5
    out2 = reconstruction_nll(changed2, targets)
    assert not torch.isclose(out2[1], base[1])
    assert torch.equal(out2[[0, 2]], base[[0, 2]])
    # an all-padding row costs nothing; the sum runs over real tokens
    assert float(reconstruction_nll(logits[:1], torch.zeros(1, 5, dtype=torch.long))) == 0.0
    manual = -F.log_softmax(logits[0, :3], -1)[torch.arange(3), targets[0, :3]].sum()
    assert float(base[0]) == pytest.approx(float(manual), rel=1e-6)


def test_reconstruction_nll_custom_pad_id():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 4, 5, generator=g)
    targets = torch.tensor([[1, 2, 4, 4], [3, 4, 4, 4]])  # 4 is padding here
    base = reconstruction_nll(logits, targets, pad_id=4)
    changed = logits.clone()
    changed[targets == 4] += 50.0 * torch.randn(int((targets == 4).sum()), 5, generator=g)
    assert torch.equal(reconstruction_nll(changed, targets, pad_id=4), base)


# ----------------------------------------------------------------------------- schedules
def test_constant_schedule():
    for step in (0, 1, 10, 10**6):
        assert kl_beta(step, "constant", beta=0.3, warmup_steps=100) == pytest.approx(0.3)


def test_linear_schedule():
    assert kl_beta(0, "linear", beta=1.0, warmup_steps=100) == 0.0
    assert kl_beta(50, "linear", beta=1.0, warmup_steps=100) == pytest.approx(0.5)
    assert kl_beta(100, "linear", beta=1.0, warmup_steps=100) == pytest.approx(1.0)
    assert kl_beta(10_000, "linear", beta=1.0, warmup_steps=100) == pytest.approx(1.0)
    # with a start value and another beta
    assert kl_beta(0, "linear", beta=0.5, warmup_steps=10, start=0.1) == pytest.approx(0.1)
    assert kl_beta(5, "linear", beta=0.5, warmup_steps=10, start=0.1) == pytest.approx(0.3)
    assert kl_beta(25, "linear", beta=0.5, warmup_steps=10, start=0.1) == pytest.approx(0.5)
    # the docstring example
    assert kl_beta(2500, "linear", beta=1.0, warmup_steps=5000) == 0.5
    # no warm-up: beta at once
    assert kl_beta(0, "linear", beta=0.8, warmup_steps=0) == pytest.approx(0.8)


def test_sigmoid_schedule():
    start, beta, warm = 0.1, 0.9, 200
    mid = kl_beta(warm // 2, "sigmoid", beta=beta, warmup_steps=warm, start=start)
    assert mid == pytest.approx(start + (beta - start) / 2)
    values = [kl_beta(s, "sigmoid", beta=beta, warmup_steps=warm, start=start) for s in range(0, 3 * warm)]
    assert all(b >= a for a, b in zip(values, values[1:]))  # monotonic
    assert values[0] == pytest.approx(start, abs=0.01 * (beta - start))
    assert values[-1] == pytest.approx(beta, abs=1e-6)
    assert all(start <= v <= beta for v in values)


def test_cyclical_schedule():
    kw = dict(beta=1.0, warmup_steps=0, start=0.0, total_steps=1000, cycles=4, ratio=0.5)
    period = 250
    for c in range(4):
        s0 = c * period
        assert kl_beta(s0, "cyclical", **kw) == 0.0  # each cycle starts at `start`
        assert kl_beta(s0 + 125, "cyclical", **kw) == pytest.approx(1.0)  # beta at ratio * period
        assert kl_beta(s0 + 200, "cyclical", **kw) == pytest.approx(1.0)  # and after it
        assert kl_beta(s0 + 249, "cyclical", **kw) == pytest.approx(1.0)
        assert kl_beta(s0 + 62, "cyclical", **kw) == pytest.approx(62 / 125)  # rising linearly
    rising = [kl_beta(s, "cyclical", **kw) for s in range(0, 126)]
    assert all(b > a for a, b in zip(rising, rising[1:]))
    assert kl_beta(1000, "cyclical", **kw) == pytest.approx(1.0)  # after the last cycle
    assert kl_beta(5000, "cyclical", **kw) == pytest.approx(1.0)
    # start and ratio are honoured
    kw2 = dict(kw, start=0.2, beta=0.6, ratio=0.8)
    assert kl_beta(250, "cyclical", **kw2) == pytest.approx(0.2)
    assert kl_beta(250 + 100, "cyclical", **kw2) == pytest.approx(0.2 + 0.4 * 100 / 200)
    assert kl_beta(250 + 200, "cyclical", **kw2) == pytest.approx(0.6)


def test_cyclical_needs_total_steps():
    with pytest.raises(ValueError, match="total_steps"):
        kl_beta(10, "cyclical", beta=1.0)
    with pytest.raises(ValueError, match="total_steps"):
        kl_beta(10, "cyclical", beta=1.0, total_steps=0)


def test_schedule_errors():
    with pytest.raises(ValueError, match="unknown KL schedule"):
        kl_beta(0, "exponential")
    for name in SCHEDULES:
        with pytest.raises(ValueError, match="step"):
            kl_beta(-1, name, total_steps=100)


# ----------------------------------------------------------------------------- diagnostics
def test_posterior_equal_to_prior_has_no_active_units_and_no_information():
    mu, logvar = np.zeros((500, 8)), np.zeros((500, 8))
    au, var = active_units(mu)
    assert au == 0
    assert var.shape == (8,) and np.all(var == 0)
    # The estimator's Monte-Carlo noise is ~0.1 nats (std) at N=500, D=8; seed 0 is the default.
    assert abs(mutual_information(mu, logvar)) < 0.05
    # and it is no fluke of one seed: averaged over seeds it stays near 0
    assert abs(np.mean([mutual_information(mu, logvar, seed=s) for s in range(5)])) < 0.1


def test_informative_posterior_is_active_with_large_information():
    n, d = 500, 8
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(0))
    mu, logvar = x, torch.full((n, d), -6.0)
    au, var = active_units(mu)
    assert au == d
    assert np.all(var > 0.5)
    mi = mutual_information(mu, logvar)
    # the mixture estimator is bounded by log N (each z is most likely under its own x)
    assert 2.0 < mi <= math.log(n) + 1e-6
    assert mi > 0.9 * math.log(n)  # posteriors are ~disjoint: close to the bound


def test_active_units_threshold_counts_dimensions():
    g = np.random.default_rng(0)
    mu = np.zeros((200, 5))
    mu[:, 1] = g.normal(0, 1.0, 200)  # variance ~1: active
    mu[:, 3] = g.normal(0, 0.03, 200)  # variance ~1e-3: below the 0.01 threshold
    au, var = active_units(mu)
    assert au == 1
    assert var[1] > 0.5 and var[3] < 0.01
    assert active_units(mu, threshold=1e-4)[0] == 2
