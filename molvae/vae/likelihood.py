"""Likelihoods of molecules under the VAE: ELBO, importance-weighted log p(x), per-token NLL.

``log p(x)`` is estimated with ``k`` samples ``z_1 .. z_k ~ q(z|x)`` (Burda et al. 2016)::

    log p(x) ~= log (1/k) sum_k exp(log p(x|z_k) + log p(z_k) - log q(z_k|x))

This is a lower bound in expectation that tightens as ``k`` grows; ``k=1`` is a one-sample
ELBO estimate.  ``-log p(x)`` (:func:`nll`) is an anomaly / applicability-domain score: the
higher it is, the less a molecule looks like the model's training data.

>>> import molvae as mv
>>> model = mv.load_pretrained()                                      # doctest: +SKIP
>>> model.score(["CC(=O)Nc1ccc(O)cc1", "C[Se]C"], k=10)               # doctest: +SKIP
               smiles   elbo  recon_nll    kl  log_px  n_tokens                               reason
0  CC(=O)Nc1ccc(O)cc1  -34.5        4.5  29.9   -33.4        17
1              C[Se]C    NaN        NaN   NaN     NaN      <NA>  tokens outside the vocabulary: [Se]

Conventions (all values in nats, per molecule):

* ``x`` is the molecule as the tokenizer spells it: its canonical SELFIES after the molecule
  policy of :func:`molvae.chem.standardize`.  A molecule has other SELFIES spellings, so
  ``p(x)`` is the probability of this one spelling (a lower bound on the molecule's
  probability); that is the quantity the model was trained on and the one that ranks.
* ``p(x|z)`` is the decoder's distribution over token sequences with the masks that
  sampling uses (:meth:`molvae.vae.model.MolVAE.generate`): ``<pad>``, ``<bos>`` and ``<unk>``
  are never produced, the first token places an atom, and ``<eos>`` is forced after
  ``max_length`` tokens.  Every token up to and including ``<eos>`` counts, so
  :func:`token_nll` sums to ``-log p(x|z)`` and ``sample()``'s ``nll`` column is on the same
  scale.
* ``recon_nll`` is the mean of ``-log p(x|z_k)`` over the same ``k`` posterior samples that
  ``log_px`` uses (a Monte Carlo estimate of ``E_q[-log p(x|z)]``; one sample when ``k=1``).
* ``kl`` is the analytic ``KL(q(z|x) || N(0, I))``.  When the model carries a learned prior
  (``model.prior`` with a ``log_prob(z)`` method), ``log p(z)`` in ``log_px`` comes from it
  and ``kl`` is the ``k``-sample Monte Carlo estimate of ``KL(q(z|x) || prior)`` instead.
* ``elbo = -(recon_nll + kl)``; ``n_tokens`` counts the SELFIES tokens (``<eos>`` not
  included).

Posterior noise is drawn per molecule from ``(seed, the molecule's token ids)``, so a
molecule's scores do not depend on the batch size, on the order of the input nor on the
other molecules in it (streamed and in-memory scoring agree), and the ``k=10`` samples are
the first ten of the ``k=100`` ones.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from molvae.tokenizer import EncodedBatch
from molvae.vae.decoys import (  # in __all__: part of this API
    random_selfies_decoys,
    selfies_edit_decoys,
)

if TYPE_CHECKING:
    from molvae.vae.model import MolVAE

__all__ = [
    "SCORE_COLUMNS",
    "score",
    "nll",
    "token_nll",
    "sequence_log_prob",
    "random_selfies_decoys",
    "selfies_edit_decoys",
]

logger = logging.getLogger(__name__)

#: Columns of :func:`score`, in order.
SCORE_COLUMNS = ("smiles", "elbo", "recon_nll", "kl", "log_px", "n_tokens", "reason")
_LOG_2PI = math.log(2.0 * math.pi)


# ---------------------------------------------------------------------------- building blocks
def _as_list(smiles: Sequence[object] | str) -> list:
    return [smiles] if isinstance(smiles, str) else list(smiles)


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k (posterior samples per molecule) must be an integer >= 1, got {k!r}")
    return int(k)


def token_log_probs(model: MolVAE, z: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Teacher-forced log-probability of each target token, 0 on padding: z (B, D), ids (B, T) -> (B, T-1).

    Uses the masks of :meth:`MolVAE.generate` (see the module docstring), so the sum over a
    row is ``log p(x|z)`` of the distribution the model samples from.
    """
    tok = model.tokenizer
    inputs, targets = ids[:, :-1], ids[:, 1:]
    logits = model.decode_logits(z, inputs).float().masked_fill(model._banned, float("-inf"))
    logits[:, 0] = logits[:, 0].masked_fill(~model._first_ok, float("-inf"))
    lp = F.log_softmax(logits, dim=-1).gather(2, targets.unsqueeze(2)).squeeze(2)
    if lp.shape[1] > tok.max_length:  # after max_length tokens <eos> is forced: probability 1
        lp[:, tok.max_length] = 0.0
    return torch.where(targets != tok.pad_id, lp, torch.zeros_like(lp))


def sequence_log_prob(model: MolVAE, z: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``log p(x|z)`` (B,) of id rows ``<bos> ... <eos> <pad>...`` given z (B, D)."""
    return token_log_probs(model, z, ids).sum(dim=1)


def _noise(ids: np.ndarray, lengths: np.ndarray, k: int, dim: int, seed: int) -> np.ndarray:
    """(M, k, dim) standard normal draws, one stream per molecule keyed by ``seed`` and its ids."""
    out = np.empty((len(ids), k, dim), dtype=np.float32)
    for i, (row, n) in enumerate(zip(ids, lengths)):
        key = hashlib.blake2b(np.ascontiguousarray(row[:n], dtype=np.int64).tobytes(), digest_size=8).digest()
        rng = np.random.default_rng([seed, int.from_bytes(key, "little")])
        out[i] = rng.standard_normal((k, dim), dtype=np.float32)
    return out


def _resolve_seed(seed: int | None) -> int:
    if seed is None:
        return int(np.random.SeedSequence().entropy)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    return int(seed)


def _prior_log_prob(model: MolVAE):
    """``log p(z)`` (B,) of the model's learned prior when it has one, else ``None`` (standard normal)."""
    prior = getattr(model, "prior", None)
    fn = getattr(prior, "log_prob", None)
    return fn if callable(fn) else None


class _EvalMode:
    """``with _EvalMode(model):`` eval mode and no gradients inside, the training flag restored after."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.grad = torch.no_grad()

    def __enter__(self) -> None:
        self.was_training = self.model.training
        self.model.eval()
        self.grad.__enter__()

    def __exit__(self, *exc) -> None:
        self.grad.__exit__(*exc)
        self.model.train(self.was_training)


def _score_encoded(
    model: MolVAE, batch: EncodedBatch, k: int, batch_size: int, seed: int, progress: bool
) -> dict[str, np.ndarray]:
    """elbo, recon_nll, kl, log_px (float64, one per row of ``batch``) from ``k`` posterior samples each.

    Molecules are sorted by length (little padding) and taken ``batch_size // k`` at a time;
    their ``k`` copies go through the decoder in chunks of at most ``batch_size`` rows, so
    memory is bounded by ``batch_size`` whatever ``k`` is.
    """
    n = len(batch)
    out = {name: np.full(n, np.nan) for name in ("elbo", "recon_nll", "kl", "log_px")}
    if n == 0:
        return out
    device, dim = model.device, model.latent_dim
    prior_log_prob = _prior_log_prob(model)
    order = np.argsort(batch.lengths, kind="stable")
    per_group = max(1, batch_size // k)
    bar = tqdm(total=n, desc=f"score (k={k})", unit="mol", disable=not progress, leave=False)
    try:
        with _EvalMode(model):
            for g in range(0, n, per_group):
                rows = order[g : g + per_group]
                m = len(rows)
                lengths_np = batch.lengths[rows]
                t = int(lengths_np.max())
                ids = torch.as_tensor(batch.ids[rows, :t], device=device)
                lengths = torch.as_tensor(lengths_np, device=device)
                mu, logvar = model.encode_ids(ids, lengths)
                mu, logvar = mu.float(), logvar.float()
                eps = torch.as_tensor(_noise(batch.ids[rows], lengths_np, k, dim, seed), device=device)
                z = mu.unsqueeze(1) + torch.exp(0.5 * logvar).unsqueeze(1) * eps  # (m, k, D)
                log_q = -0.5 * (eps.pow(2) + logvar.unsqueeze(1) + _LOG_2PI).sum(dim=-1)  # (m, k)
                flat_z = z.reshape(m * k, dim)
                if prior_log_prob is None:
                    log_pz = -0.5 * (z.pow(2) + _LOG_2PI).sum(dim=-1)
                else:
                    log_pz = torch.as_tensor(prior_log_prob(flat_z)).float().reshape(m, k)
                flat_ids = ids.repeat_interleave(k, dim=0)
                log_pxz = torch.cat(
                    [
                        sequence_log_prob(model, flat_z[c : c + batch_size], flat_ids[c : c + batch_size])
                        for c in range(0, m * k, batch_size)
                    ]
                ).reshape(m, k)
                log_w = log_pxz + log_pz - log_q
                log_px = torch.logsumexp(log_w.double(), dim=1) - math.log(k)
                recon = -log_pxz.double().mean(dim=1)
                if prior_log_prob is None:
                    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).double().sum(dim=1)
                else:
                    kl = (log_q - log_pz).double().mean(dim=1)
                out["log_px"][rows] = log_px.cpu().numpy()
                out["recon_nll"][rows] = recon.cpu().numpy()
                out["kl"][rows] = kl.cpu().numpy()
                bar.update(m)
    finally:
        bar.close()
    out["elbo"] = -(out["recon_nll"] + out["kl"])
    return out


def _warn_failures(batch: EncodedBatch, n: int, what: str) -> None:
    if len(batch.failures):
        first = batch.failures.iloc[0]
        logger.warning("%s: %d of %d molecules cannot be scored (first: %s: %s)",
                       what, len(batch.failures), n, first.smiles, first.reason)


# ---------------------------------------------------------------------------- public API
def score(
    model: MolVAE,
    smiles: Sequence[object] | str,
    k: int = 1,
    batch_size: int = 512,
    seed: int | None = 0,
    progress: bool = False,
) -> pd.DataFrame:
    """Likelihood terms of each molecule, one row per input in input order.

    Columns (:data:`SCORE_COLUMNS`): ``smiles`` (the input), ``elbo``, ``recon_nll``, ``kl``,
    ``log_px`` (importance-weighted with ``k`` samples), ``n_tokens`` and ``reason``: empty
    for scored rows; for inputs the tokenizer rejects (invalid SMILES, atoms outside the
    vocabulary, too long) the numbers are NaN and ``reason`` says why.  Definitions: the
    module docstring of :mod:`molvae.vae.likelihood`.

    ``batch_size`` bounds the decoder rows (molecule x sample) per forward pass; ``seed``
    fixes the posterior samples (``None``: fresh ones on every call).
    """
    k = _check_k(k)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    seed = _resolve_seed(seed)
    smiles = _as_list(smiles)
    n = len(smiles)
    batch = model.tokenizer.encode(smiles)
    _warn_failures(batch, n, "score")
    values = _score_encoded(model, batch, k, batch_size, seed, progress)
    frame = pd.DataFrame({"smiles": pd.Series(smiles, dtype=object)})
    for name in ("elbo", "recon_nll", "kl", "log_px"):
        col = np.full(n, np.nan)
        col[batch.index] = values[name]
        frame[name] = col
    n_tokens = pd.array([pd.NA] * n, dtype="Int64")
    n_tokens[batch.index] = batch.lengths - 2
    frame["n_tokens"] = n_tokens
    reason = np.full(n, "", dtype=object)
    reason[batch.failures["index"].to_numpy(dtype=np.int64)] = batch.failures["reason"].to_numpy(dtype=object)
    frame["reason"] = reason
    return frame


def nll(
    model: MolVAE,
    smiles: Sequence[object] | str,
    k: int = 10,
    batch_size: int = 512,
    seed: int | None = 0,
    progress: bool = False,
) -> np.ndarray:
    """Anomaly / applicability-domain score ``-log p(x)`` (N,) in nats; NaN where a molecule cannot be scored.

    Higher means less typical of the training data.  ``k`` importance samples per molecule
    (default 10; with the shipped model one molecule's estimate moves by about 4 nats (std)
    from seed to seed with ``k=1``, 2.3 with ``k=10`` and 1.9 with ``k=100``, against a spread
    of about 8 nats between MOSES test molecules).

    Beware of size: ``-log p(x)`` sums over tokens, so very small molecules (``Cl``, ``CO``)
    score as typical as drug-like ones; compare within a size range, or divide by
    ``n_tokens + 1`` (:func:`score`) when sizes differ a lot.
    """
    return -score(model, smiles, k=k, batch_size=batch_size, seed=seed, progress=progress)["log_px"].to_numpy()


def token_nll(
    model: MolVAE,
    smiles: Sequence[object] | str,
    batch_size: int = 512,
    as_arrays: bool = False,
    progress: bool = False,
) -> pd.DataFrame | list[np.ndarray | None]:
    """Per-token ``-log p(token | earlier tokens, z)`` at the posterior mean ``z = mu(x)``.

    Returns a long DataFrame with columns ``row`` (position in the input), ``smiles``,
    ``position`` (0-based), ``token`` (the SELFIES token; the last one of each molecule is
    ``<eos>``) and ``nll``; molecules that cannot be encoded have no rows (their reasons:
    ``model.tokenizer.encode(smiles).failures``).  With ``as_arrays=True``: one float array per
    input (``n_tokens + 1`` values), ``None`` for molecules that cannot be encoded.  Each
    molecule's values sum to ``-log p(x|mu)``: where the tokens of a molecule cost most shows
    which part of it the model finds unusual.
    """
    smiles = _as_list(smiles)
    batch = model.tokenizer.encode(smiles)
    _warn_failures(batch, len(smiles), "token_nll")
    per_mol: list[np.ndarray | None] = [None] * len(smiles)
    order = np.argsort(batch.lengths, kind="stable")
    bar = tqdm(total=len(batch), desc="token nll", unit="mol", disable=not progress, leave=False)
    try:
        with _EvalMode(model):
            for g in range(0, len(batch), batch_size):
                rows = order[g : g + batch_size]
                t = int(batch.lengths[rows].max())
                ids = torch.as_tensor(batch.ids[rows, :t], device=model.device)
                lengths = torch.as_tensor(batch.lengths[rows], device=model.device)
                mu, _ = model.encode_ids(ids, lengths)
                lp = token_log_probs(model, mu.float(), ids).cpu().numpy()
                for j, r in enumerate(rows):
                    per_mol[int(batch.index[r])] = (-lp[j, : int(batch.lengths[r]) - 1]).astype(np.float64)
                bar.update(len(rows))
    finally:
        bar.close()
    if as_arrays:
        return per_mol
    itos = model.tokenizer.itos
    parts = []
    for r, i in enumerate(batch.index):
        values = per_mol[int(i)]
        ids_row = batch.ids[r, 1 : int(batch.lengths[r])]
        parts.append(pd.DataFrame({
            "row": int(i),
            "smiles": pd.Series([smiles[int(i)]] * len(values), dtype=object),
            "position": np.arange(len(values)),
            "token": [itos[t] for t in ids_row],
            "nll": values,
        }))
    if not parts:
        return pd.DataFrame({"row": pd.Series(dtype=np.int64), "smiles": pd.Series(dtype=object),
                             "position": pd.Series(dtype=np.int64), "token": pd.Series(dtype=object),
                             "nll": pd.Series(dtype=np.float64)})
    return pd.concat(parts, ignore_index=True)
