"""Drawing molecules from a model: the latent prior, decoding, and the faithfulness filter.

``MolVAE.sample`` calls :func:`sample`.  By default it returns only *faithful* molecules
(:func:`molvae.tokenizer.is_faithful`: the decoder spelled the molecule exactly as the
tokenizer spells it, so SELFIES did not have to repair the string) and redraws the rest,
with a bound on the number of draws so that a model that rarely spells a molecule
faithfully fails with a clear error instead of looping.  z is drawn from the model's learned
prior when it has one (``molvae.vae.prior``), else from N(0, I).

Conditional sampling (``condition={"logp": 2.5}``): a model trained with conditions
(:mod:`molvae.vae.conditions`) decodes with p(x|z,c).  z comes from the model's learned prior
given the condition when that prior was fitted on the joint of z and those properties
(``fit_prior(..., conditions=[...])``: the posteriors of training molecules with such
properties, where the decoder was trained), else from N(0, I), the prior q(z|x,c) was
trained against.  Such a joint prior also lets a model trained *without* conditions sample
for a property: z given the condition, decoded as usual.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from molvae.vae.conditions import condition_tensor

if TYPE_CHECKING:  # pragma: no cover
    from molvae.vae.model import MolVAE

__all__ = ["sample", "sample_iter", "draw_latent", "SamplingError", "PRIORS", "DEFAULT_GUIDANCE"]

logger = logging.getLogger(__name__)

PRIORS = ("auto", "learned", "standard")
# a faithful run draws at most this many latent points per molecule asked for (acceptance
# of the shipped models is 0.3-0.6; below 1/MAX_DRAWS_PER_MOLECULE something is wrong)
MAX_DRAWS_PER_MOLECULE = 20
# with a property tolerance: 0.2-0.6 of the shipped conditional model's faithful samples fall
# within 0.35 logP or 0.05 QED of the targets of benchmarks/conditional.py, 3-14 latent points
# a kept molecule (faithfulness included); the bound allows
# a tighter tolerance or a rarer target than that before it stops
MAX_DRAWS_PER_MOLECULE_TOLERANCE = 100
# classifier-free guidance weight of conditional sampling, chosen on the shipped moses-conditional
# (stage 2, benchmarks/conditional.py, 1,000 samples a target): w = 0.75 gave median logP errors
# 0.59 / 0.49 / 0.47 / 0.42 for logP 1 / 2 / 3 / 4 and QED errors 0.125 / 0.091 / 0.040 for QED
# 0.6 / 0.75 / 0.9; w = 1 overshoots logP (achieved medians 0.43 at 1, 4.33 at 4), w = 0.5 loses
# on QED 0.6 (0.146); benchmarks/RESULTS.md, "Property-conditioned generation"
DEFAULT_GUIDANCE = 0.75


class SamplingError(RuntimeError):
    """Sampling cannot deliver what was asked (e.g. too few faithful molecules within the draw bound)."""


def _prior_names(model: MolVAE) -> tuple[str, ...]:
    prior = getattr(model, "prior", None)
    return tuple(prior.condition_names) if prior is not None else ()


def resolve_prior(model: MolVAE, prior: str, conditional: bool = False, names: tuple[str, ...] = ()) -> str:
    """``"learned"`` or ``"standard"`` for ``prior`` in :data:`PRIORS` (``auto``: learned when the model has one).

    ``conditional``: sampling for a property condition on ``names``.  The learned prior serves
    there only when it was fitted on the joint of z and properties: for a conditional model on
    at least one of ``names``, for a model without conditions on all of them.
    """
    if prior not in PRIORS:
        raise ValueError(f"unknown prior {prior!r}; use one of {', '.join(PRIORS)}")
    if conditional:
        have = _prior_names(model)
        cvae = model.config.n_conditions > 0
        usable = bool(have) and (set(names) <= set(have) if not cvae else bool(set(names) & set(have)))
        if prior == "standard" or (prior == "auto" and not usable):
            if not cvae:
                raise ValueError(
                    "this model was trained without conditions and its prior is not fitted on "
                    f"{list(names)}: it cannot sample for that condition (fit a prior with "
                    f"molvae.fit_prior(model, smiles, conditions={list(names)}), CLI molvae fit-prior --conditions, "
                    "or use mv.load_pretrained('moses-conditional'))")
            return "standard"
        if not usable:
            raise ValueError(f"prior='learned' with a condition needs a learned prior fitted on those properties; this "
                             f"model's prior has {list(have) or 'none'} (fit one with molvae.fit_prior(..., conditions=[...]))")
        return "learned"
    has = getattr(model, "prior", None) is not None
    if prior == "learned" and not has:
        raise ValueError("this model has no learned prior: fit one with molvae.fit_prior (CLI: molvae fit-prior) or use prior='standard'")
    if prior == "auto":
        return "learned" if has else "standard"
    return prior


def draw_latent(model: MolVAE, n: int, prior: str = "auto", generator: torch.Generator | None = None,
                condition: Mapping[str, float] | None = None) -> torch.Tensor:
    """``n`` latent points (n, latent_dim) from the learned prior (given ``condition``, when it has
    those properties) or N(0, I)."""
    names = tuple(condition) if condition else ()
    if resolve_prior(model, prior, conditional=bool(names), names=names) == "learned":
        dist = model.prior
        if names:
            dist = dist.condition({k: float(v) for k, v in condition.items() if k in dist.condition_names})
        return dist.sample(n, generator=generator)
    return torch.randn(n, model.latent_dim, generator=generator)


def _round_seed(seed: int | None, i: int) -> int | None:
    return None if seed is None else int(np.random.SeedSequence([seed, i]).generate_state(1)[0])


def sample(
    model: MolVAE,
    n: int,
    temperature: float = 1.0,
    seed: int | None = None,
    batch_size: int = 1024,
    method: str = "sample",
    progress: bool = True,
    faithful: bool = True,
    prior: str = "auto",
    max_draws: int | None = None,
    precision: str = "auto",
    condition: dict[str, float] | None = None,
    guidance: float | None = None,
    tolerance: float | Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Draw ``n`` molecules: z from the prior, then decode.  DataFrame: smiles, selfies, valid, faithful, nll.

    ``faithful=True`` (default) returns ``n`` molecules that the decoder spelled exactly as
    the tokenizer spells them (no SELFIES repair; :func:`molvae.tokenizer.is_faithful`),
    redrawing the others, at most ``max_draws`` latent points in all (default 20 per
    molecule, 100 with a ``tolerance``: :class:`molvae.vae.sampling.SamplingError` beyond);
    ``faithful=False`` decodes ``n`` points and keeps every row.  ``prior``: ``auto`` (the learned prior when the model
    has one, else N(0, I)), ``learned`` or ``standard``.  ``df.attrs``: ``n_drawn``,
    ``acceptance_rate``, ``prior``.  ``precision``: as in :meth:`decode_z` (``auto``: bf16
    autocast where the device does bf16 natively).  ``condition`` (a conditional model's
    property targets, e.g. ``{"logp": 2.5, "qed": 0.85}``; properties left out are
    marginalized): decoded with p(x|z,c) by a conditional model; z from the learned prior
    given the condition when that prior was fitted with those properties (``prior="auto"``
    or ``"learned"``), else from N(0, I) (``"standard"``).  A model trained without
    conditions samples for a condition only through such a prior.  ``df.attrs["prior"]``
    says which was used.  ``guidance`` (a conditional model with a condition):
    classifier-free guidance weight (:func:`molvae.vae.decoding.generate`; 0: none; None:
    :data:`DEFAULT_GUIDANCE` there, 0 elsewhere).  It doubles the decoder's work.
    ``tolerance`` (with a condition): keep only molecules whose property, computed with RDKit
    (:mod:`molvae.properties`), is within this distance of its target, redrawing the others
    (within the ``max_draws`` bound); a number applies to every property of the condition,
    a mapping (``{"logp": 0.3, "qed": 0.05}``) to the properties it names.  The computed values
    come back as columns named after the properties; ``df.attrs``: ``tolerance``,
    ``tolerance_rate`` (the fraction of the candidates, faithful ones where ``faithful``, within
    it) and ``n_no_property`` (candidates RDKit could not score, dropped).  This is a filter on
    the model's samples, not the model: the model's own spread around a target is what
    ``benchmarks/conditional.py`` measures without it.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    if condition is not None:

        if not isinstance(condition, Mapping):
            raise ValueError(f"condition must map property names to targets, e.g. {{'logp': 2.5}}; got {condition!r}")
        if model.config.n_conditions > 0:
            condition_tensor(model, condition, 1)  # names the model does not know, non-numbers: fail before drawing
        values = {}
        for k, v in condition.items():
            try:
                values[k] = float(v)
            except (TypeError, ValueError):
                raise ValueError(f"condition {k}={v!r} is not a number") from None
        condition = values
    names = tuple(condition) if condition is not None else ()
    tol = _tolerances(condition, tolerance)
    which = resolve_prior(model, prior, conditional=condition is not None, names=names)
    # a conditional model decodes with c; a model without conditions only draws z given it
    decode_condition = condition if model.config.n_conditions > 0 else None
    if guidance is None:
        guidance = DEFAULT_GUIDANCE if decode_condition is not None else 0.0
    if guidance and decode_condition is None:
        raise ValueError("guidance needs a conditional model and a condition (it contrasts the decoder's "
                         "predictions with and without the condition)")
    latent_condition = condition if which == "learned" else None  # z given c from a joint prior
    gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None

    def draw(m: int) -> torch.Tensor:
        return draw_latent(model, m, which, gen, condition=latent_condition)
    if not faithful and not tol:
        df = model.decode_z(draw(n), method=method, temperature=temperature, seed=seed,
                            batch_size=batch_size, progress=progress, precision=precision, condition=decode_condition,
                            guidance=guidance)
        df.attrs.update(n_drawn=n, acceptance_rate=float(df["faithful"].mean()) if n else float("nan"), prior=which,
                        condition=condition, guidance=guidance)
        return df
    per = MAX_DRAWS_PER_MOLECULE_TOLERANCE if tol else MAX_DRAWS_PER_MOLECULE
    limit = int(max_draws) if max_draws is not None else max(per * n, 1000)
    frames: list[pd.DataFrame] = []
    accepted = drawn = n_faithful = n_candidates = n_within = n_unscored = 0
    bar = tqdm(total=n, desc="sample", unit="mol", disable=not progress or n < batch_size, leave=False)
    try:
        i = 0
        while accepted < n:
            need = n - accepted
            rate = accepted / drawn if drawn else 0.5
            m = min(limit - drawn, max(64, math.ceil(need / max(rate, 0.05) * 1.1)))
            if m <= 0:
                if tol:
                    raise SamplingError(
                        f"only {accepted:,} of {n:,} molecules within tolerance {tol} of {condition} after decoding "
                        f"{drawn:,} latent points ({n_within:,} of {n_candidates:,} candidates within it; bound "
                        f"{limit:,} draws): widen the tolerance, raise max_draws, or ask for a target nearer the "
                        "training data"
                    )
                raise SamplingError(
                    f"only {accepted:,} of {n:,} faithful molecules after decoding {drawn:,} latent points "
                    f"(acceptance {accepted / max(drawn, 1):.3f}; bound {limit:,} draws): this model rarely spells a "
                    "molecule the way it was trained; sample with faithful=False (CLI --no-faithful), raise max_draws, "
                    "or train it longer"
                )
            z = draw(m)
            df = model.decode_z(z, method=method, temperature=temperature, seed=_round_seed(seed, i),
                                batch_size=batch_size, progress=False, precision=precision, condition=decode_condition,
                                guidance=guidance)
            drawn += m
            n_faithful += int(df["faithful"].sum())
            keep = df[df["faithful"]] if faithful else df
            if tol:
                n_candidates += len(keep)
                keep, unscored = _within_tolerance(keep, condition, tol)
                n_within += len(keep)
                n_unscored += unscored
            keep = keep.head(need)
            frames.append(keep)
            accepted += len(keep)
            bar.update(len(keep))
            i += 1
    finally:
        bar.close()
    out = pd.concat(frames, ignore_index=True) if frames else model.decode_z(np.zeros((0, model.latent_dim)))
    rate = n_faithful / drawn if drawn else float("nan")
    out.attrs.update(n_drawn=drawn, acceptance_rate=rate, prior=which, condition=condition, guidance=guidance)
    if tol:
        for name in tol:
            if name not in out.columns:  # n = 0
                out[name] = pd.Series(dtype=float)
        t_rate = n_within / n_candidates if n_candidates else float("nan")
        out.attrs.update(tolerance=tol, tolerance_rate=t_rate, n_no_property=n_unscored)
        logger.info("sampled %d molecules within %s of %s from %d latent points (faithful %.3f, within tolerance "
                    "%.3f of the candidates, %d not scored by RDKit, %s prior)", len(out), tol, condition, drawn,
                    rate, t_rate, n_unscored, which)
    else:
        logger.info("sampled %d faithful molecules from %d latent points (acceptance %.3f, %s prior)", len(out), drawn,
                    rate, which)
    return out


def _tolerances(condition: Mapping[str, float] | None, tolerance: object) -> dict[str, float]:
    """``tolerance`` as {property: allowed |achieved - target|}, checked against ``condition``."""
    if tolerance is None:
        return {}
    if not condition:
        raise ValueError("tolerance needs a condition (the targets it is measured from), e.g. "
                         "condition={'logp': 2.5}, tolerance=0.3")
    if isinstance(tolerance, Mapping):
        unknown = [k for k in tolerance if k not in condition]
        if unknown:
            raise ValueError(f"tolerance names {unknown}, which the condition {dict(condition)} does not")
        items = dict(tolerance)
    else:
        items = {k: tolerance for k in condition}
    from molvae.properties import available

    out = {}
    for k, v in items.items():
        if k not in available():
            raise ValueError(f"tolerance on {k!r}: not a property molvae.properties computes ({', '.join(available())})")
        try:
            v = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"tolerance {k}={v!r} is not a number") from None
        if not math.isfinite(v) or v <= 0:
            raise ValueError(f"tolerance {k}={v!r} must be a finite number > 0")
        out[k] = v
    return out


def _within_tolerance(df: pd.DataFrame, condition: Mapping[str, float], tol: Mapping[str, float]):
    """Rows of ``df`` whose RDKit properties are within ``tol`` of ``condition`` (values added as
    columns), and how many rows RDKit could not score."""
    from molvae.properties import compute

    names = list(tol)
    values = compute(df["smiles"].tolist(), names, n_jobs=1)[names].to_numpy(dtype=float)
    scored = np.isfinite(values).all(axis=1) & df["valid"].to_numpy(dtype=bool)
    target = np.array([float(condition[k]) for k in names])
    width = np.array([tol[k] for k in names])
    ok = scored & (np.abs(np.nan_to_num(values) - target) <= width).all(axis=1)
    out = df.assign(**{k: values[:, i] for i, k in enumerate(names)})[ok]
    return out, int((~scored).sum())


def sample_iter(
    model: MolVAE,
    n: int,
    chunk_size: int = 10_000,
    temperature: float = 1.0,
    seed: int | None = None,
    method: str = "sample",
    batch_size: int = 1024,
    faithful: bool = True,
    prior: str = "auto",
    condition: dict[str, float] | None = None,
    guidance: float | None = None,
    tolerance: float | Mapping[str, float] | None = None,
):
    """Yield ``n`` samples as DataFrames of at most ``chunk_size`` rows (memory stays flat in ``n``).

    Chunk ``i`` uses the seed ``(seed, i)``, so a run is reproducible chunk by chunk.
    """
    for i, start in enumerate(range(0, n, chunk_size)):
        yield model.sample(min(chunk_size, n - start), temperature=temperature, seed=_round_seed(seed, i),
                           batch_size=batch_size, method=method, progress=False, faithful=faithful, prior=prior,
                           condition=condition, guidance=guidance, tolerance=tolerance)
