"""Learned latent priors: a density model of the aggregate posterior q(z) = E_x q(z|x).

A VAE is trained against N(0, I), but the posteriors of its training molecules do not fill
that ball evenly: prior draws land in holes where the decoder never saw a code, and those
decode to odd molecules.  Sampling from a density fitted to the encoded training molecules
instead keeps ``sample`` where the decoder was trained.

Every prior here is a mixture of Gaussians, stored as plain tensors (it survives
``torch.load(weights_only=True)``):

- ``kind="gmm"``: ``n_components`` Gaussians (full or diagonal covariance) fitted by EM
  (scikit-learn's ``GaussianMixture``) on z drawn from the posteriors of the molecules given;
- ``kind="aggregate"``: the aggregate posterior itself, one diagonal Gaussian per molecule
  (its posterior mean and standard deviation), equal weights, for ``n_components`` molecules.

A GMM can also be fitted on the joint of z and RDKit properties of the molecules
(``fit_prior(..., conditions=["logp", "qed"])``).  Sampling without a condition then uses its
marginal over z; :meth:`GaussianMixturePrior.condition` gives the mixture of z given some of
the properties (each component conditioned in closed form, its weight multiplied by how likely
it makes the values asked for; the properties not named are marginalized).  That is what
``model.sample(n, condition=...)`` draws z from when the model's prior has the properties.

>>> import molvae as mv                                       # doctest: +SKIP
>>> model = mv.load_pretrained()                              # doctest: +SKIP
>>> model.prior = mv.fit_prior(model, mv.load_dataset("moses", "train", limit=50_000))  # doctest: +SKIP
>>> model.sample(10, prior="learned")                         # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:  # pragma: no cover
    from molvae.vae.model import MolVAE

__all__ = ["GaussianMixturePrior", "fit_prior", "PRIOR_KINDS"]

logger = logging.getLogger(__name__)

PRIOR_KINDS = ("gmm", "aggregate")


class GaussianMixturePrior:
    """A mixture of K Gaussians in D dimensions.

    ``log_weights`` (K,), ``means`` (K, D), and either ``scale_tril`` (K, D, D), the Cholesky
    factors of full covariances, or ``scales`` (K, D), diagonal standard deviations.

    A joint prior of z and properties has ``condition_names`` (k names): its last k
    coordinates are those properties standardized with ``condition_mean`` and
    ``condition_std``; :attr:`dim` is the latent part (D - k), and :meth:`sample` and
    :meth:`log_prob` are of the marginal over z.
    """

    def __init__(
        self,
        log_weights: torch.Tensor,
        means: torch.Tensor,
        scale_tril: torch.Tensor | None = None,
        scales: torch.Tensor | None = None,
        kind: str = "gmm",
        info: dict | None = None,
        condition_names: Sequence[str] | None = None,
        condition_mean: torch.Tensor | Sequence[float] | None = None,
        condition_std: torch.Tensor | Sequence[float] | None = None,
    ):
        if (scale_tril is None) == (scales is None):
            raise ValueError("give exactly one of scale_tril (full covariance) or scales (diagonal)")
        means = torch.as_tensor(means, dtype=torch.float32)
        if means.ndim != 2:
            raise ValueError(f"means must be (K, D), got shape {tuple(means.shape)}")
        k, d = means.shape
        log_weights = torch.as_tensor(log_weights, dtype=torch.float32).reshape(-1)
        if log_weights.shape != (k,):
            raise ValueError(f"log_weights must be ({k},), got {tuple(log_weights.shape)}")
        if scale_tril is not None:
            scale_tril = torch.as_tensor(scale_tril, dtype=torch.float32)
            if scale_tril.shape != (k, d, d):
                raise ValueError(f"scale_tril must be ({k}, {d}, {d}), got {tuple(scale_tril.shape)}")
            diag = torch.diagonal(scale_tril, dim1=-2, dim2=-1)
        else:
            scales = torch.as_tensor(scales, dtype=torch.float32)
            if scales.shape != (k, d):
                raise ValueError(f"scales must be ({k}, {d}), got {tuple(scales.shape)}")
            diag = scales
        tensors = [log_weights, means, diag]
        if not all(torch.isfinite(t).all() for t in tensors) or not bool((diag > 0).all()):
            raise ValueError("prior parameters must be finite, with positive scales")
        self.log_weights = torch.log_softmax(log_weights, dim=0)
        self.means = means
        self.scale_tril = scale_tril
        self.scales = scales
        self.kind = kind
        self.info = dict(info or {})
        names = tuple(str(x) for x in (condition_names or ()))
        if len(set(names)) != len(names):
            raise ValueError(f"condition names repeat: {names}")
        if names:
            if len(names) >= d:
                raise ValueError(f"{len(names)} condition dimensions leave no latent dimensions in a {d}-dimensional prior")
            cm = torch.as_tensor(condition_mean, dtype=torch.float32).reshape(-1)
            cs = torch.as_tensor(condition_std, dtype=torch.float32).reshape(-1)
            if cm.shape != (len(names),) or cs.shape != (len(names),):
                raise ValueError(f"condition_mean and condition_std need one value per condition name {names}")
            if not (torch.isfinite(cm).all() and torch.isfinite(cs).all() and bool((cs > 0).all())):
                raise ValueError("condition statistics must be finite, with std > 0")
        elif condition_mean is not None or condition_std is not None:
            raise ValueError("condition_mean / condition_std without condition_names")
        else:
            cm = cs = None
        self.condition_names, self.condition_mean, self.condition_std = names, cm, cs

    # ------------------------------------------------------------------ shape
    @property
    def n_components(self) -> int:
        return int(self.means.shape[0])

    @property
    def dim(self) -> int:
        """Latent dimensions (a joint prior's property coordinates not counted)."""
        return int(self.means.shape[1]) - len(self.condition_names)

    @property
    def covariance(self) -> str:
        return "full" if self.scale_tril is not None else "diag"

    def __repr__(self) -> str:
        extra = f", conditions={list(self.condition_names)}" if self.condition_names else ""
        return (f"GaussianMixturePrior(kind={self.kind!r}, n_components={self.n_components}, dim={self.dim}, "
                f"covariance={self.covariance!r}{extra})")

    def marginal(self) -> GaussianMixturePrior:
        """The mixture over z alone (itself when it has no property coordinates)."""
        if not self.condition_names:
            return self
        d = self.dim
        # the leading block of a lower Cholesky factor is the Cholesky factor of the leading block
        tril = None if self.scale_tril is None else self.scale_tril[:, :d, :d]
        scales = None if self.scales is None else self.scales[:, :d]
        return GaussianMixturePrior(self.log_weights, self.means[:, :d], scale_tril=tril, scales=scales,
                                    kind=self.kind, info=self.info)

    def condition(self, values: Mapping[str, float]) -> GaussianMixturePrior:
        """The mixture of z given property values ``{name: value}`` (raw units; names not given marginalized).

        Each component is conditioned in closed form and reweighted by the density it gives
        the values; ``{}`` is the marginal.  A name the prior was not fitted on is a ValueError.
        """
        unknown = [k for k in values if k not in self.condition_names]
        if unknown:
            raise ValueError(f"this prior was fitted on the properties {list(self.condition_names) or 'none'}, "
                             f"not on {unknown}")
        if not values:
            return self.marginal()
        d = self.dim
        obs = [d + self.condition_names.index(k) for k in values]
        j = [self.condition_names.index(k) for k in values]
        raw = torch.tensor([float(values[k]) for k in values], dtype=torch.float64)
        if not bool(torch.isfinite(raw).all()):
            raise ValueError(f"condition values must be finite numbers, got {dict(values)}")
        c = (raw - self.condition_mean.double()[j]) / self.condition_std.double()[j]
        means = self.means.double()
        mu_a, mu_b = means[:, :d], means[:, obs]
        if self.scale_tril is None:  # diagonal: z and the properties are independent within a component
            var_b = self.scales.double()[:, obs] ** 2
            loglik = -0.5 * (((c - mu_b) ** 2) / var_b + torch.log(2 * math.pi * var_b)).sum(-1)
            lw = torch.log_softmax(self.log_weights.double() + loglik, 0)
            return GaussianMixturePrior(lw, self.means[:, :d], scales=self.scales[:, :d], kind=self.kind,
                                        info=dict(self.info, conditioned_on=",".join(values)))
        L = self.scale_tril.double()
        cov = L @ L.transpose(-1, -2)
        s_ab, s_bb = cov[:, :d][:, :, obs], cov[:, obs][:, :, obs]
        l_bb = torch.linalg.cholesky(s_bb)
        diff = (c - mu_b).unsqueeze(-1)  # (K, m, 1)
        y = torch.linalg.solve_triangular(l_bb, diff, upper=False)  # L_bb^-1 (c - mu_b)
        loglik = (-0.5 * (y**2).sum((-2, -1)) - torch.log(torch.diagonal(l_bb, dim1=-2, dim2=-1)).sum(-1)
                  - 0.5 * len(obs) * math.log(2 * math.pi))
        w = torch.linalg.solve_triangular(l_bb, s_ab.transpose(-1, -2), upper=False)  # L_bb^-1 S_ba  (K, m, d)
        mean = mu_a + (w.transpose(-1, -2) @ y).squeeze(-1)
        cond_cov = cov[:, :d, :d] - w.transpose(-1, -2) @ w
        cond_cov = 0.5 * (cond_cov + cond_cov.transpose(-1, -2)) + 1e-9 * torch.eye(d, dtype=torch.float64)
        lw = torch.log_softmax(self.log_weights.double() + loglik, 0)
        return GaussianMixturePrior(lw, mean, scale_tril=torch.linalg.cholesky(cond_cov), kind=self.kind,
                                    info=dict(self.info, conditioned_on=",".join(values)))

    # ------------------------------------------------------------------ use
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws of z, (n, dim) float32 on the CPU; reproducible with ``generator``."""
        if self.condition_names:
            return self.marginal().sample(n, generator=generator)
        comp = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=generator)
        eps = torch.randn(n, self.dim, generator=generator)
        if self.scale_tril is not None:
            noise = torch.einsum("nij,nj->ni", self.scale_tril[comp], eps)
        else:
            noise = self.scales[comp] * eps
        return self.means[comp] + noise

    def log_prob(self, z: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        """log q(z) for each row of z (N, dim) -> (N,), computed in chunks of rows."""
        if self.condition_names:
            return self.marginal().log_prob(z, chunk=chunk)
        z = torch.as_tensor(z, dtype=torch.float32)
        if z.ndim != 2 or z.shape[1] != self.dim:
            raise ValueError(f"z must be (N, {self.dim}), got shape {tuple(z.shape)}")
        device = z.device
        means, lw = self.means.to(device), self.log_weights.to(device)
        const = -0.5 * self.dim * math.log(2 * math.pi)
        out = []
        for s in range(0, len(z), chunk):
            zc = z[s : s + chunk]
            diff = zc[:, None, :] - means[None]  # (n, K, D)
            if self.scale_tril is not None:
                tril = self.scale_tril.to(device)
                # solve L y = diff for every component: (K, D, D) against (K, D, n)
                y = torch.linalg.solve_triangular(tril, diff.permute(1, 2, 0), upper=False)  # (K, D, n)
                maha = (y**2).sum(dim=1).T  # (n, K)
                logdet = torch.log(torch.diagonal(tril, dim1=-2, dim2=-1)).sum(-1)  # (K,)
            else:
                sc = self.scales.to(device)
                maha = ((diff / sc[None]) ** 2).sum(-1)
                logdet = torch.log(sc).sum(-1)
            comp = const - logdet[None] - 0.5 * maha + lw[None]
            out.append(torch.logsumexp(comp, dim=1))
        return torch.cat(out) if out else torch.zeros(0, device=device)

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict:
        """Plain types and tensors only (a checkpoint entry that loads with ``weights_only=True``)."""
        d = {
            "kind": self.kind,
            "log_weights": self.log_weights.clone(),
            "means": self.means.clone(),
            "info": {k: v for k, v in self.info.items() if isinstance(v, (str, int, float, bool))},
        }
        if self.scale_tril is not None:
            d["scale_tril"] = self.scale_tril.clone()
        else:
            d["scales"] = self.scales.clone()
        if self.condition_names:
            d.update(condition_names=list(self.condition_names), condition_mean=self.condition_mean.clone(),
                     condition_std=self.condition_std.clone())
        return d

    @classmethod
    def from_dict(cls, d: dict) -> GaussianMixturePrior:
        if not isinstance(d, dict):
            raise TypeError(f"a prior entry must be a mapping, got {type(d).__name__}")
        kind = d.get("kind")
        if kind not in PRIOR_KINDS:
            raise ValueError(f"unknown prior kind {kind!r}; known: {', '.join(PRIOR_KINDS)}")
        tensors = {k: d[k].float() for k in ("log_weights", "means", "scale_tril", "scales") if k in d}
        if not all(torch.is_tensor(v) for v in tensors.values()):
            raise TypeError("prior parameters must be tensors")
        names = d.get("condition_names")
        extra = {}
        if names is not None:
            if not isinstance(names, (list, tuple)) or not all(isinstance(x, str) for x in names):
                raise TypeError(f"condition names of a prior must be a list of strings, got {names!r}")
            if not (torch.is_tensor(d.get("condition_mean")) and torch.is_tensor(d.get("condition_std"))):
                raise TypeError("a joint prior needs condition_mean and condition_std tensors")
            from molvae.vae.conditions import check_names

            extra = dict(condition_names=list(check_names(list(names))), condition_mean=d["condition_mean"].float(),
                         condition_std=d["condition_std"].float())
        return cls(kind=kind, info=d.get("info") or {}, **tensors, **extra)


# ---------------------------------------------------------------------------- fitting
def fit_prior(
    model: MolVAE,
    smiles: Sequence[str],
    kind: str = "gmm",
    n_components: int = 32,
    covariance: str = "full",
    draws_per_molecule: int = 1,
    seed: int = 0,
    max_iter: int = 200,
    progress: bool = False,
    conditions: Sequence[str] | str | None = None,
) -> GaussianMixturePrior:
    """Fit a :class:`GaussianMixturePrior` to the aggregate posterior of ``smiles``.

    ``kind="gmm"``: EM on ``draws_per_molecule`` z drawn from each molecule's posterior
    (``covariance`` "full" or "diag"); ``kind="aggregate"``: ``n_components`` randomly chosen
    molecules' posteriors as the components.  Molecules the model cannot encode are skipped
    and counted in the log.  Assign the result to ``model.prior`` (saved with the model).

    ``conditions`` (property names of :mod:`molvae.properties`, GMM only): fit the joint of z
    and those properties, so that ``model.sample(n, condition={...})`` can draw z given them;
    molecules where RDKit cannot compute one are left out and counted in the log.
    """
    if kind not in PRIOR_KINDS:
        raise ValueError(f"unknown prior kind {kind!r}; use one of {', '.join(PRIOR_KINDS)}")
    if covariance not in ("full", "diag"):
        raise ValueError("covariance must be 'full' or 'diag'")
    if n_components < 1:
        raise ValueError("n_components must be >= 1")
    names: tuple[str, ...] = ()
    if conditions is not None:
        from molvae.vae.conditions import check_names

        names = check_names(conditions)
        if kind != "gmm":
            raise ValueError("a prior with conditions is a GMM (kind='gmm')")
    smiles = list(smiles)
    t0 = time.time()
    mu, logvar = model.posterior(smiles, progress=progress)
    ok = np.isfinite(mu).all(axis=1)
    if (~ok).any():
        logger.warning("fit_prior: %d of %d molecules cannot be encoded and are left out", int((~ok).sum()), len(smiles))
    props = None
    if names:
        from molvae.vae.conditions import property_values

        props = property_values(smiles, names, progress=progress)
        bad = ok & ~np.isfinite(props).all(axis=1)
        if bad.any():
            logger.warning("fit_prior: %d of %d molecules have a property RDKit cannot compute (%s) and are left out",
                           int(bad.sum()), len(smiles), ", ".join(names))
        ok &= ~bad
        props = props[ok]
    mu, std = mu[ok].astype(np.float64), np.exp(0.5 * logvar[ok]).astype(np.float64)
    rng = np.random.default_rng(seed)
    info = {"n_molecules": int(ok.sum()), "seed": int(seed)}
    if kind == "aggregate":
        if len(mu) < n_components:
            raise ValueError(f"an aggregate prior of {n_components} components needs that many encodable molecules; got {len(mu)}")
        pick = rng.choice(len(mu), size=n_components, replace=False)
        prior = GaussianMixturePrior(torch.zeros(n_components), torch.as_tensor(mu[pick]),
                                     scales=torch.as_tensor(std[pick]), kind="aggregate", info=info)
    else:
        from sklearn.mixture import GaussianMixture

        if len(mu) < 2 * n_components:
            raise ValueError(f"a {n_components}-component GMM needs at least {2 * n_components} encodable molecules; got {len(mu)}")
        reps = max(1, draws_per_molecule)
        z = np.concatenate([mu + std * rng.standard_normal(mu.shape) for _ in range(reps)])
        extra = {}
        if names:
            c_mean, c_std = props.mean(axis=0), props.std(axis=0)
            c_std = np.where(c_std > 1e-6 * np.maximum(np.abs(c_mean), 1.0), c_std, 1.0)
            z = np.concatenate([z, np.tile((props - c_mean) / c_std, (reps, 1))], axis=1)
            extra = dict(condition_names=names, condition_mean=torch.as_tensor(c_mean),
                         condition_std=torch.as_tensor(c_std))
        gmm = GaussianMixture(n_components, covariance_type=covariance, max_iter=max_iter, random_state=seed,
                              reg_covar=1e-4, init_params="k-means++")
        gmm.fit(z)
        info.update(converged=bool(gmm.converged_), n_iter=int(gmm.n_iter_), covariance=covariance)
        if covariance == "full":
            tril = np.linalg.cholesky(gmm.covariances_)
            prior = GaussianMixturePrior(torch.as_tensor(np.log(gmm.weights_)), torch.as_tensor(gmm.means_),
                                         scale_tril=torch.as_tensor(tril), kind="gmm", info=info, **extra)
        else:
            prior = GaussianMixturePrior(torch.as_tensor(np.log(gmm.weights_)), torch.as_tensor(gmm.means_),
                                         scales=torch.as_tensor(np.sqrt(gmm.covariances_)), kind="gmm", info=info,
                                         **extra)
    prior.info["fit_seconds"] = round(time.time() - t0, 1)
    logger.info("fitted %r on %d molecules in %.1f s", prior, int(ok.sum()), time.time() - t0)
    return prior
