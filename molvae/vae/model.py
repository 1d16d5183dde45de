"""The SELFIES VAE: bidirectional GRU encoder, autoregressive GRU decoder conditioned on z.

This module holds the layers, the training pass and encoding.  Decoding is in
:mod:`molvae.vae.decoding`, sampling from the prior in :mod:`molvae.vae.sampling`, latent-space
helpers (reconstruct, interpolate, neighbors) in :mod:`molvae.vae.latent`, likelihoods in
:mod:`molvae.vae.likelihood` and the file format in :mod:`molvae.vae.checkpoint`; the model's
methods of the same names call them.

>>> import molvae as mv
>>> model = mv.load_pretrained()                     # doctest: +SKIP
>>> df = model.sample(100, seed=0)                   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence

from molvae.config import ModelConfig
from molvae.tokenizer import SelfiesTokenizer
from molvae.utils.device import resolve_device
from molvae.vae import decoding, latent, sampling
from molvae.vae.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_pretrained,
    model_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from molvae.vae.conditions import ConditionSpec, append_condition, molecule_condition
from molvae.vae.likelihood import nll, score, token_nll
from molvae.vae.prior import GaussianMixturePrior

# load_pretrained, the checkpoint functions and resolve_device are defined in molvae.vae.checkpoint
# and molvae.utils.device; they are importable from here too
__all__ = ["MolVAE", "load_pretrained", "resolve_device", "load_checkpoint", "save_checkpoint", "CheckpointError"]

logger = logging.getLogger(__name__)


class MolVAE(nn.Module):
    """SELFIES VAE.  ``tokenizer`` fixes the vocabulary; ``config`` the sizes."""

    def __init__(self, tokenizer: SelfiesTokenizer, config: ModelConfig | None = None):
        super().__init__()
        config = config or ModelConfig()
        config = dataclasses.replace(config, vocab_size=tokenizer.vocab_size, max_length=tokenizer.max_length)
        self.tokenizer = tokenizer
        self.config = c = config
        # a learned latent prior (molvae.vae.prior) used by sample(); None: N(0, I)
        self.prior: GaussianMixturePrior | None = None
        # property conditions (molvae.vae.conditions): names and training statistics; None: unconditional
        self.conditions: ConditionSpec | None = None
        k2 = 2 * c.n_conditions  # condition inputs ([values * mask, mask]); 0: exactly the unconditional layers
        self.embedding = nn.Embedding(c.vocab_size, c.embedding_dim, padding_idx=tokenizer.pad_id)
        self.encoder = nn.GRU(
            c.embedding_dim,
            c.encoder_hidden_dim,
            num_layers=c.encoder_layers,
            dropout=c.encoder_dropout if c.encoder_layers > 1 else 0.0,
            batch_first=True,
            bidirectional=True,
        )
        self.to_posterior = nn.Linear(2 * c.encoder_hidden_dim + k2, 2 * c.latent_dim)
        self.latent_to_hidden = nn.Linear(c.latent_dim + k2, c.decoder_layers * c.decoder_hidden_dim)
        self.decoder = nn.GRU(
            c.embedding_dim + c.latent_dim + k2,
            c.decoder_hidden_dim,
            num_layers=c.decoder_layers,
            dropout=c.decoder_dropout if c.decoder_layers > 1 else 0.0,
            batch_first=True,
        )
        self.output = nn.Linear(c.decoder_hidden_dim, c.vocab_size)
        # tokens never generated: padding, <bos>, <unk>; the first token must place an atom
        banned = torch.zeros(c.vocab_size, dtype=torch.bool)
        banned[[tokenizer.pad_id, tokenizer.bos_id, tokenizer.unk_id]] = True
        self.register_buffer("_banned", banned, persistent=False)
        first_ok = torch.as_tensor(tokenizer.atom_token_mask())
        self.register_buffer("_first_ok", first_ok, persistent=False)

    # ------------------------------------------------------------------ core
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def encode_ids(
        self, ids: torch.Tensor, lengths: torch.Tensor, condition: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior parameters.  ids (B, T) with ``<bos>`` first, lengths (B,) -> mu, logvar (B, D).

        ``condition`` (B, 2k): a conditional model's condition vectors (None: unknown).
        """
        tokens = ids[:, 1:]  # (B, T-1): t_1 .. t_n <eos>
        emb = self.embedding(tokens)
        packed = pack_padded_sequence(emb, (lengths - 1).cpu(), batch_first=True, enforce_sorted=False)
        _, h = self.encoder(packed)  # (2 * layers, B, H)
        h = torch.cat([h[-2], h[-1]], dim=-1)  # last layer, both directions: (B, 2H)
        h = append_condition(self, h, condition)
        mu, logvar = self.to_posterior(h).chunk(2, dim=-1)
        return mu, logvar.clamp(-20.0, 10.0)

    def init_hidden(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder initial state from z (B, D), or z with its condition appended (B, D + 2k) -> (layers, B, H)."""
        c = self.config
        h = torch.tanh(self.latent_to_hidden(z))
        return h.view(z.shape[0], c.decoder_layers, c.decoder_hidden_dim).transpose(0, 1).contiguous()

    def decode_logits(self, z: torch.Tensor, inputs: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced logits.  z (B, D), inputs (B, T) starting with ``<bos>`` -> (B, T, V)."""
        z = append_condition(self, z, condition)
        emb = self.embedding(inputs)
        zs = z.unsqueeze(1).expand(-1, inputs.shape[1], -1)
        out, _ = self.decoder(torch.cat([emb, zs], dim=-1), self.init_hidden(z))
        return self.output(out)

    def forward(
        self, ids: torch.Tensor, lengths: torch.Tensor, word_dropout: float = 0.0, sample_z: bool = True,
        condition: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Training pass.  ids (B, T) -> logits (B, T-1, V), targets (B, T-1), mu, logvar, z.

        ``condition`` (B, 2k): the condition vectors both q(z|x,c) and p(x|z,c) see.
        """
        t = int(lengths.max())
        ids = ids[:, :t]
        mu, logvar = self.encode_ids(ids, lengths, condition)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample_z else mu
        inputs, targets = ids[:, :-1], ids[:, 1:]
        if word_dropout > 0 and self.training:
            drop = (torch.rand(inputs.shape, device=inputs.device) < word_dropout) & (inputs != self.tokenizer.pad_id)
            drop[:, 0] = False  # keep <bos>
            inputs = inputs.masked_fill(drop, self.tokenizer.unk_id)
        return {"logits": self.decode_logits(z, inputs, condition), "targets": targets, "mu": mu, "logvar": logvar, "z": z}

    # ------------------------------------------------------------------ encoding
    @torch.no_grad()
    def posterior(
        self, smiles: Sequence[str] | str, batch_size: int = 512, progress: bool = False, condition=None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and log-variance, each (N, latent_dim); NaN rows for molecules that cannot be encoded.

        A conditional model's q(z|x,c) takes ``condition``: None (default) computes it from each
        molecule's own properties; a mapping ``{name: value or N values}`` gives it (names left
        out, and ``{}``, are unknown).  See :mod:`molvae.vae.conditions`.
        """
        if isinstance(smiles, str):
            smiles = [smiles]
        smiles = list(smiles)
        cond = molecule_condition(self, smiles, condition)
        batch = self.tokenizer.encode(smiles)
        mu_out = np.full((len(smiles), self.latent_dim), np.nan, dtype=np.float32)
        logvar_out = mu_out.copy()
        if len(batch.failures):
            logger.warning(
                "encode: %d of %d molecules cannot be encoded (first: %s: %s)",
                len(batch.failures), len(smiles), batch.failures.smiles.iloc[0], batch.failures.reason.iloc[0],
            )
        was_training = self.training
        self.eval()
        try:
            for s in decoding.progress_batches(len(batch), batch_size, "encode", progress):
                ids = torch.as_tensor(batch.ids[s : s + batch_size], device=self.device)
                lengths = torch.as_tensor(batch.lengths[s : s + batch_size], device=self.device)
                rows = batch.index[s : s + batch_size]
                c = None if cond is None else torch.as_tensor(cond[rows], device=self.device)
                mu, logvar = self.encode_ids(ids[:, : int(lengths.max())], lengths, c)
                mu_out[rows] = mu.float().cpu().numpy()
                logvar_out[rows] = logvar.float().cpu().numpy()
        finally:
            self.train(was_training)
        return mu_out, logvar_out

    def encode(
        self, smiles: Sequence[str] | str, batch_size: int = 512, sample: bool = False, progress: bool = False,
        seed: int | None = None, condition=None,
    ) -> np.ndarray:
        """Posterior means (N, latent_dim) of ``smiles``.

        Molecules the tokenizer rejects get a row of NaN and are counted in the log (the
        reasons: ``model.tokenizer.encode(smiles).failures``).  ``sample=True`` draws z
        from q(z|x) instead of taking the mean.  ``condition``: as in :meth:`posterior`.
        """
        mu, logvar = self.posterior(smiles, batch_size=batch_size, progress=progress, condition=condition)
        if not sample:
            return mu
        rng = np.random.default_rng(seed)
        return (mu + rng.standard_normal(mu.shape).astype(np.float32) * np.exp(0.5 * logvar)).astype(np.float32)

    # ------------------------------------------------------------------ decoding (molvae.vae.decoding)
    generate = decoding.generate

    def beam_search(
        self, z: torch.Tensor, beam_width: int = 5, max_length: int | None = None, condition: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Most likely token sequence per z by beam search: (B, D) -> ids (B, T); ``condition`` as in :meth:`generate`."""
        return decoding.beam_search(self, z, beam_width=beam_width, max_length=max_length, condition=condition)

    decode_z = decoding.decode_z

    def decode(self, z: np.ndarray | torch.Tensor, method: str = "greedy", **kwargs) -> list[str]:
        """Latent points (N, D) -> N canonical SMILES (greedy by default; ``kwargs`` as in :meth:`decode_z`)."""
        kwargs.setdefault("check_faithful", False)  # only the molecules are returned
        return self.decode_z(z, method=method, **kwargs)["smiles"].tolist()

    # ------------------------------------------------------------------ sampling (molvae.vae.sampling)
    sample = sampling.sample

    sample_iter = sampling.sample_iter

    # ------------------------------------------------------------------ latent space (molvae.vae.latent)
    def reconstruct(
        self, smiles: Sequence[str] | str, method: str = "greedy", beam_width: int = 5, progress: bool = False
    ) -> pd.DataFrame:
        """Encode (posterior mean) and decode each molecule.

        DataFrame: input, canonical, reconstruction, encoded, exact (canonical match); rows that
        could not be encoded have an empty reconstruction and ``exact=False``.
        """
        return latent.reconstruct(self, smiles, method=method, beam_width=beam_width, progress=progress)

    def interpolate(self, a: str, b: str, steps: int = 8, method: str = "slerp") -> pd.DataFrame:
        """Molecules decoded (greedy) along the path between the latent means of ``a`` and ``b``.

        ``method``: ``slerp`` (spherical, stays where the prior has mass) or ``linear``.
        """
        return latent.interpolate(self, a, b, steps=steps, method=method)

    def neighbors(
        self, smiles: str, n: int = 10, radius: float = 0.5, seed: int = 0, max_tries: int = 20,
        faithful: bool = False,
    ) -> pd.DataFrame:
        """Up to ``n`` distinct molecules decoded (greedy) from points near ``smiles``'s latent mean.

        Points are drawn as z + radius * N(0, I); DataFrame sorted by latent distance with
        smiles, distance and Tanimoto similarity to the query.  ``faithful=True`` keeps only
        decodes that SELFIES did not have to repair (see :meth:`sample`).
        """
        return latent.neighbors(self, smiles, n=n, radius=radius, seed=seed, max_tries=max_tries, faithful=faithful)

    # ------------------------------------------------------------------ likelihood (molvae.vae.likelihood)
    def score(
        self, smiles: Sequence[str] | str, k: int = 1, batch_size: int = 512, seed: int | None = 0,
        progress: bool = False,
    ) -> pd.DataFrame:
        """ELBO, reconstruction NLL, KL and importance-weighted log p(x) (``k`` samples) per molecule, in nats.

        One row per input, in order; rows that cannot be encoded have NaN and a ``reason``.
        See :func:`molvae.vae.likelihood.score`.
        """

        return score(self, smiles, k=k, batch_size=batch_size, seed=seed, progress=progress)

    def nll(
        self, smiles: Sequence[str] | str, k: int = 10, batch_size: int = 512, seed: int | None = 0,
        progress: bool = False,
    ) -> np.ndarray:
        """Anomaly score ``-log p(x)`` (N,): higher = less typical of the training data.  See :func:`molvae.vae.likelihood.nll`."""

        return nll(self, smiles, k=k, batch_size=batch_size, seed=seed, progress=progress)

    def token_nll(self, smiles: Sequence[str] | str, as_arrays: bool = False, batch_size: int = 512):
        """Per-token NLL at the posterior mean (long DataFrame, or arrays).  See :func:`molvae.vae.likelihood.token_nll`."""

        return token_nll(self, smiles, batch_size=batch_size, as_arrays=as_arrays)

    # ------------------------------------------------------------------ files (molvae.vae.checkpoint)
    def save(self, path: str | os.PathLike, half: bool = False, metadata: dict | None = None, **extra) -> None:
        """Write a checkpoint (weights, config, vocabulary, metadata); ``half`` stores float16 weights."""
        state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu() for k, v in self.state_dict().items()}
        save_checkpoint(path, self.checkpoint_dict(state, metadata, **extra))

    def checkpoint_dict(self, state: dict | None = None, metadata: dict | None = None, **extra) -> dict:
        """The checkpoint dict :meth:`save` writes (see :func:`molvae.vae.checkpoint.model_checkpoint`)."""
        return model_checkpoint(self, state, metadata, **extra)

    @classmethod
    def from_checkpoint(cls, ckpt: dict, device: str | torch.device = "auto") -> MolVAE:
        """The model a checkpoint dict describes (:class:`CheckpointError` when its content does not fit together)."""
        return model_from_checkpoint(ckpt, device=device, cls=cls)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "auto") -> MolVAE:
        """Load a checkpoint written by :meth:`save` or by training (``best.pt`` / ``last.pt``)."""
        return cls.from_checkpoint(load_checkpoint(path), device=device)
