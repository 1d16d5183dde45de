"""Posterior-collapse diagnostics on latent posteriors: active units and mutual information."""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["active_units", "mutual_information", "ACTIVE_UNIT_THRESHOLD"]

ACTIVE_UNIT_THRESHOLD = 0.01


def active_units(mu: np.ndarray | torch.Tensor, threshold: float = ACTIVE_UNIT_THRESHOLD) -> tuple[int, np.ndarray]:
    """Burda et al. (2016): dimension d is active when Var_x(E_q[z_d | x]) > ``threshold``.

    ``mu``: (N, D) posterior means.  Returns the count and the (D,) variances.
    """
    mu = torch.as_tensor(mu, dtype=torch.float64)
    var = mu.var(dim=0, unbiased=True) if len(mu) > 1 else torch.zeros(mu.shape[1], dtype=torch.float64)
    return int((var > threshold).sum()), var.numpy()


def mutual_information(
    mu: np.ndarray | torch.Tensor, logvar: np.ndarray | torch.Tensor, seed: int = 0
) -> float:
    """Monte-Carlo estimate of I(x; z) under q(z|x) p_data(x) (the estimator of He et al. 2019).

    I = E_x E_q(z|x)[log q(z|x)] - E_q(z)[log q(z)], with q(z) approximated by the
    mixture of the N posteriors.  ~0 when every posterior equals the prior.
    """
    mu = torch.as_tensor(mu, dtype=torch.float64)
    logvar = torch.as_tensor(logvar, dtype=torch.float64)
    n, d = mu.shape
    gen = torch.Generator().manual_seed(seed)
    std = torch.exp(0.5 * logvar)
    eps = torch.randn(mu.shape, generator=gen, dtype=torch.float64)
    z = mu + std * eps  # (N, D)
    # E[log q(z|x)] at the same samples as E[log q(z)], so the two noises cancel when q(z|x) = q(z)
    neg_entropy = (-0.5 * (eps**2 + logvar + math.log(2 * math.pi)).sum(dim=1)).mean()
    log_qz = torch.empty(n, dtype=torch.float64)
    for s in range(0, n, 256):
        zi = z[s : s + 256].unsqueeze(1)  # (b, 1, D)
        dev = (zi - mu.unsqueeze(0)) ** 2 / logvar.exp().unsqueeze(0)  # (b, N, D)
        log_dens = -0.5 * (dev + logvar.unsqueeze(0) + math.log(2 * math.pi)).sum(dim=-1)  # (b, N)
        log_qz[s : s + 256] = torch.logsumexp(log_dens, dim=1) - math.log(n)
    return float(neg_entropy - log_qz.mean())


def latent_report(model, smiles, n_reconstruct: int | None = None, seed: int = 0) -> dict[str, float]:
    """Latent diagnostics of a trained model on held-out ``smiles``.

    Active units (count and fraction), total KL and KL per dimension (nats), mutual
    information, and greedy exact-match reconstruction (canonical SMILES) of the first
    ``n_reconstruct`` molecules (all by default).
    """
    mu, logvar = model.posterior(smiles, progress=True)
    ok = np.isfinite(mu).all(axis=1)
    mu, logvar = mu[ok], logvar[ok]
    au, _ = active_units(mu)
    kl = 0.5 * (mu**2 + np.exp(logvar) - 1.0 - logvar)  # (N, D)
    kl_dim = kl.mean(axis=0)
    out = {
        "n_molecules": int(ok.sum()),
        "active_units": au,
        "active_fraction": au / mu.shape[1],
        "kl_total": float(kl.sum(axis=1).mean()),
        "mutual_info": mutual_information(mu[:2000], logvar[:2000], seed=seed),
    }
    subset = list(smiles)[: n_reconstruct or len(smiles)]
    rec = model.reconstruct(subset, progress=True)
    out["recon_exact"] = float(rec["exact"].mean())
    out["kl_per_dim"] = [float(v) for v in kl_dim]
    return out
