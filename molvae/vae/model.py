"""The SELFIES VAE: bidirectional GRU encoder, autoregressive GRU decoder conditioned on z.

>>> import molvae as mv
>>> model = mv.load_pretrained()                     # doctest: +SKIP
>>> df = model.sample(100, seed=0)                   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence
from tqdm.auto import tqdm

from molvae._version import __version__
from molvae.utils.device import native_bf16, resolve_device
from molvae.vae.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, CheckpointError, load_checkpoint, save_checkpoint
from molvae.vae.conditions import ConditionSpec, append_condition, condition_tensor, molecule_condition, spec_from_checkpoint
from molvae.config import ModelConfig, from_dict
from molvae.vae.prior import GaussianMixturePrior
from molvae.utils.parallel import chunked_map
from molvae.tokenizer import SelfiesTokenizer, decode_strings

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

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def generate(
        self,
        z: torch.Tensor,
        method: str = "greedy",
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        max_length: int | None = None,
        condition: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode token ids from z (B, D).  Returns ids (B, T) with ``<bos>`` and ``<eos>``, and the
        NLL (B,) of the generated tokens under the model at temperature 1.

        ``method``: ``greedy`` or ``sample`` (with ``temperature``).  The first token always
        places an atom and every row ends with ``<eos>``, so every row decodes to a molecule.
        ``condition`` (B, 2k): a conditional model's condition vectors (None: unknown).
        """
        if method not in ("greedy", "sample"):
            raise ValueError(f"unknown decoding method {method!r}; use greedy, sample or beam")
        if method == "sample" and temperature <= 0:
            raise ValueError("temperature must be > 0")
        tok = self.tokenizer
        max_length = max_length or tok.max_length
        z = append_condition(self, z, condition)  # the decoder takes z and c together
        b = z.shape[0]
        h = self.init_hidden(z)
        current = torch.full((b,), tok.bos_id, dtype=torch.long, device=z.device)
        out = torch.full((b, max_length + 2), tok.pad_id, dtype=torch.long, device=z.device)
        out[:, 0] = tok.bos_id
        nll = torch.zeros(b, device=z.device)
        zin = z.unsqueeze(1)
        # rows still being generated; finished rows leave the batch (sequence lengths vary a
        # lot, so the last steps would otherwise run mostly padding)
        rows = torch.arange(b, device=z.device)
        for t in range(max_length + 1):
            x = torch.cat([self.embedding(current).unsqueeze(1), zin], dim=-1)
            o, h = self.decoder(x, h)
            logits = self.output(o[:, 0]).float()
            logits = logits.masked_fill(self._banned, float("-inf"))
            if t == 0:
                logits = logits.masked_fill(~self._first_ok, float("-inf"))
            if t == max_length:  # out of room: end here
                nxt = torch.full((len(rows),), tok.eos_id, dtype=torch.long, device=z.device)
            elif method == "greedy":
                nxt = logits.argmax(dim=-1)
            else:
                probs = F.softmax(logits / temperature, dim=-1)
                nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            logp = F.log_softmax(logits, dim=-1).gather(1, nxt.unsqueeze(1)).squeeze(1)
            nll[rows] += -logp.nan_to_num(neginf=0.0)
            out[rows, t + 1] = nxt
            live = nxt != tok.eos_id
            if not bool(live.any()):
                break
            if not bool(live.all()):
                rows, nxt, zin, h = rows[live], nxt[live], zin[live], h[:, live]
            current = nxt
        return out, nll

    @torch.no_grad()
    def beam_search(
        self, z: torch.Tensor, beam_width: int = 5, max_length: int | None = None, condition: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Most likely token sequence per z by beam search: (B, D) -> ids (B, T); ``condition`` as in :meth:`generate`."""
        tok = self.tokenizer
        max_length = max_length or tok.max_length
        z = append_condition(self, z, condition)
        b, k, v = z.shape[0], beam_width, self.config.vocab_size
        zk = z.repeat_interleave(k, dim=0)  # (B*K, D)
        h = self.init_hidden(zk)
        scores = torch.full((b, k), float("-inf"), device=z.device)
        scores[:, 0] = 0.0
        seqs = torch.full((b * k, max_length + 2), tok.pad_id, dtype=torch.long, device=z.device)
        seqs[:, 0] = tok.bos_id
        current = seqs[:, 0].clone()
        done = torch.zeros(b * k, dtype=torch.bool, device=z.device)
        for t in range(max_length + 1):
            x = torch.cat([self.embedding(current).unsqueeze(1), zk.unsqueeze(1)], dim=-1)
            o, h = self.decoder(x, h)
            logp = F.log_softmax(self.output(o[:, 0]).float().masked_fill(self._banned, float("-inf")), dim=-1)
            if t == 0:
                logp = logp.masked_fill(~self._first_ok, float("-inf"))
            if t == max_length:
                forced = torch.full_like(logp, float("-inf"))
                forced[:, tok.eos_id] = logp[:, tok.eos_id]  # out of room: end, at the model's own cost
                logp = forced
            # a finished beam only continues with padding, at no cost
            finished = torch.full_like(logp, float("-inf"))
            finished[:, tok.pad_id] = 0.0
            logp = torch.where(done.unsqueeze(1), finished, logp)
            cand = (scores.view(b * k, 1) + logp).view(b, k * v)
            scores, flat = cand.topk(k, dim=1)  # (B, K)
            beam = flat // v
            token = flat % v
            src = (torch.arange(b, device=z.device).unsqueeze(1) * k + beam).view(-1)
            seqs = seqs[src]
            h = h[:, src]
            done = done[src]
            token = token.view(-1)
            seqs[:, t + 1] = token
            done = done | (token == tok.eos_id)
            current = token
            if bool(done.all()):
                break
        best = seqs.view(b, k, -1)[:, 0]
        return best

    # ------------------------------------------------------------------ user API
    def _batches(self, n: int, batch_size: int, desc: str, progress: bool):
        starts = range(0, n, batch_size)
        return tqdm(starts, desc=desc, unit="batch", disable=not progress or n <= batch_size, leave=False)

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
            for s in self._batches(len(batch), batch_size, "encode", progress):
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

    def _decode_ids(self, ids: np.ndarray) -> tuple[list[str], list[str | None], list[bool]]:
        """SELFIES, canonical SMILES (None: no molecule) and faithfulness of each id row."""
        selfies = self.tokenizer.decode_selfies(ids)
        # SELFIES -> canonical SMILES is pure and costs more than the GRU step per molecule;
        # nearby latent points (optimization, neighbours) decode to the same strings often
        cache = self.__dict__.setdefault("_smiles_cache", {})
        if len(cache) > 200_000:
            cache.clear()
        todo = list(dict.fromkeys(s for s in selfies if s not in cache))
        # large batches (sampling) are spread over forked worker processes (molvae.utils.parallel)
        for s, hit in zip(todo, chunked_map(decode_strings, todo, min_chunk=512)):
            cache[s] = hit
        smiles = [cache[s][0] for s in selfies]
        faithful = [cache[s][1] for s in selfies]
        return selfies, smiles, faithful

    @torch.no_grad()
    def decode_z(
        self,
        z: np.ndarray | torch.Tensor,
        method: str = "greedy",
        temperature: float = 1.0,
        beam_width: int = 5,
        seed: int | None = None,
        batch_size: int = 1024,
        progress: bool = False,
        precision: str = "auto",
        condition=None,
    ) -> pd.DataFrame:
        """Decode latent points (N, D) -> DataFrame (smiles, selfies, valid, faithful, nll).

        ``condition`` (conditional models): a mapping ``{name: value or N values}`` or condition
        vectors (N, 2k) (:mod:`molvae.vae.conditions`); None or names left out: unknown.

        ``faithful``: the SELFIES string is the tokenizer's own spelling of its molecule
        (:func:`molvae.tokenizer.is_faithful`), i.e. SELFIES did not repair it.
        ``precision``: ``auto`` runs ``method="sample"`` under bfloat16 autocast where the
        device does bf16 natively (about 3x faster on an AVX-512-BF16 CPU) and everything else
        in float32; ``fp32`` or ``bf16`` force one.
        """
        if precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"unknown precision {precision!r}; use auto, fp32 or bf16")
        bf16 = precision == "bf16" or (precision == "auto" and method == "sample" and native_bf16(self.device))
        z = torch.as_tensor(np.asarray(z, dtype=np.float32)) if not torch.is_tensor(z) else z.float()
        if z.ndim == 1:
            z = z.unsqueeze(0)
        if z.shape[1] != self.latent_dim:
            raise ValueError(f"z has {z.shape[1]} dimensions, the model {self.latent_dim}")
        if not torch.isfinite(z).all():
            raise ValueError("z contains NaN or inf (a molecule that failed to encode?)")
        cond = condition_tensor(self, condition, len(z))
        gen = None
        if seed is not None:
            gen = torch.Generator(device=self.device)
            gen.manual_seed(int(seed))
        was_training = self.training
        self.eval()
        frames = []
        try:
            for s in self._batches(len(z), batch_size, "decode", progress):
                zb = z[s : s + batch_size].to(self.device)
                cb = None if cond is None else cond[s : s + batch_size]
                if method == "beam":
                    ids = self.beam_search(zb, beam_width, condition=cb)
                    nll = torch.full((len(zb),), float("nan"))
                else:
                    with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
                        ids, nll = self.generate(zb, method=method, temperature=temperature, generator=gen,
                                                 condition=cb)
                selfies, smiles, faithful = self._decode_ids(ids.cpu().numpy())
                frames.append(
                    pd.DataFrame(
                        {
                            "smiles": [s or "" for s in smiles],
                            "selfies": selfies,
                            "valid": [s is not None for s in smiles],
                            "faithful": faithful,
                            "nll": nll.cpu().numpy().astype(float),
                        }
                    )
                )
        finally:
            self.train(was_training)
        if not frames:
            return pd.DataFrame({"smiles": pd.Series(dtype=str), "selfies": pd.Series(dtype=str),
                                 "valid": pd.Series(dtype=bool), "faithful": pd.Series(dtype=bool),
                                 "nll": pd.Series(dtype=float)})
        return pd.concat(frames, ignore_index=True)

    def decode(self, z: np.ndarray | torch.Tensor, method: str = "greedy", **kwargs) -> list[str]:
        """Latent points (N, D) -> N canonical SMILES (greedy by default)."""
        return self.decode_z(z, method=method, **kwargs)["smiles"].tolist()

    def sample(
        self,
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
    ) -> pd.DataFrame:
        """Draw ``n`` molecules: z from the prior, then decode.  DataFrame: smiles, selfies, valid, faithful, nll.

        ``faithful=True`` (default) returns ``n`` molecules that the decoder spelled exactly as
        the tokenizer spells them (no SELFIES repair; :func:`molvae.tokenizer.is_faithful`),
        redrawing the others, at most ``max_draws`` latent points in all (default 20 per
        molecule: :class:`molvae.vae.sampling.SamplingError` beyond); ``faithful=False`` decodes
        ``n`` points and keeps every row.  ``prior``: ``auto`` (the learned prior when the model
        has one, else N(0, I)), ``learned`` or ``standard``.  ``df.attrs``: ``n_drawn``,
        ``acceptance_rate``, ``prior``.  ``precision``: as in :meth:`decode_z` (``auto``: bf16
        autocast where the device does bf16 natively).  ``condition`` (a conditional model's
        property targets, e.g. ``{"logp": 2.5, "qed": 0.85}``; properties left out are
        marginalized): z from N(0, I), decoded with p(x|z,c).
        """
        from molvae.vae.sampling import sample

        return sample(self, n, temperature=temperature, seed=seed, batch_size=batch_size, method=method,
                      progress=progress, faithful=faithful, prior=prior, max_draws=max_draws, precision=precision,
                      condition=condition)

    def sample_iter(
        self,
        n: int,
        chunk_size: int = 10_000,
        temperature: float = 1.0,
        seed: int | None = None,
        method: str = "sample",
        batch_size: int = 1024,
        faithful: bool = True,
        prior: str = "auto",
        condition: dict[str, float] | None = None,
    ):
        """Yield ``n`` samples as DataFrames of at most ``chunk_size`` rows (memory stays flat in ``n``).

        Chunk ``i`` uses the seed ``(seed, i)``, so a run is reproducible chunk by chunk.
        """
        for i, start in enumerate(range(0, n, chunk_size)):
            m = min(chunk_size, n - start)
            chunk_seed = None if seed is None else int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
            yield self.sample(m, temperature=temperature, seed=chunk_seed, batch_size=batch_size, method=method,
                              progress=False, faithful=faithful, prior=prior, condition=condition)

    def reconstruct(
        self, smiles: Sequence[str] | str, method: str = "greedy", beam_width: int = 5, progress: bool = False
    ) -> pd.DataFrame:
        """Encode (posterior mean) and decode each molecule.

        DataFrame: input, canonical, reconstruction, exact (canonical match); rows that
        could not be encoded have an empty reconstruction and ``exact=False``.
        """
        from molvae.chem import standardize

        if isinstance(smiles, str):
            smiles = [smiles]
        smiles = list(smiles)
        z = self.encode(smiles, progress=progress)
        ok = np.isfinite(z).all(axis=1)
        recon = [""] * len(smiles)
        if ok.any():
            dec = self.decode(z[ok], method=method, beam_width=beam_width, progress=progress)
            for i, s in zip(np.flatnonzero(ok), dec):
                recon[i] = s
        canon = [standardize(s) if isinstance(s, str) else None for s in smiles]
        return pd.DataFrame(
            {
                "input": smiles,
                "canonical": canon,
                "reconstruction": recon,
                "encoded": ok,
                "exact": [c is not None and c == r for c, r in zip(canon, recon)],
            }
        )

    def interpolate(self, a: str, b: str, steps: int = 8, method: str = "slerp") -> pd.DataFrame:
        """Molecules decoded (greedy) along the path between the latent means of ``a`` and ``b``.

        ``method``: ``slerp`` (spherical, stays where the prior has mass) or ``linear``.
        """
        z = self.encode([a, b])
        if not np.isfinite(z).all():
            raise ValueError(f"cannot encode {a!r} or {b!r}: {self.tokenizer.encode([a, b]).failures.reason.tolist()}")
        t = np.linspace(0.0, 1.0, steps)
        za, zb = z[0], z[1]
        if method == "slerp":
            cos = np.dot(za, zb) / (np.linalg.norm(za) * np.linalg.norm(zb) + 1e-12)
            omega = np.arccos(np.clip(cos, -1.0, 1.0))
            if omega < 1e-6:
                path = np.outer(1 - t, za) + np.outer(t, zb)
            else:
                path = (np.sin((1 - t) * omega)[:, None] * za + np.sin(t * omega)[:, None] * zb) / np.sin(omega)
        elif method == "linear":
            path = np.outer(1 - t, za) + np.outer(t, zb)
        else:
            raise ValueError("method must be 'slerp' or 'linear'")
        df = self.decode_z(path.astype(np.float32))
        df.insert(0, "t", t)
        return df

    def neighbors(
        self, smiles: str, n: int = 10, radius: float = 0.5, seed: int = 0, max_tries: int = 20,
        faithful: bool = False,
    ) -> pd.DataFrame:
        """Up to ``n`` distinct molecules decoded (greedy) from points near ``smiles``'s latent mean.

        Points are drawn as z + radius * N(0, I); DataFrame sorted by latent distance with
        smiles, distance and Tanimoto similarity to the query.  ``faithful=True`` keeps only
        decodes that SELFIES did not have to repair (see :meth:`sample`).
        """
        from molvae.chem import standardize
        from molvae.properties import similarity

        z0 = self.encode([smiles])
        if not np.isfinite(z0).all():
            raise ValueError(f"cannot encode {smiles!r}: {self.tokenizer.encode([smiles]).failures.reason.tolist()}")
        query = standardize(smiles)
        rng = np.random.default_rng(seed)
        found: dict[str, float] = {}
        for _ in range(max_tries):
            eps = rng.standard_normal((max(2 * n, 16), self.latent_dim)).astype(np.float32)
            pts = z0 + radius * eps
            dec = self.decode_z(pts)
            for s, ok, d in zip(dec.smiles, dec.faithful, np.linalg.norm(pts - z0, axis=1)):
                if faithful and not ok:
                    continue
                if s and s != query and (s not in found or d < found[s]):
                    found[s] = float(d)
            if len(found) >= n:
                break
        df = pd.DataFrame({"smiles": list(found), "distance": list(found.values())})
        df = df.sort_values("distance", kind="stable").head(n).reset_index(drop=True)
        df["similarity"] = similarity(df["smiles"].tolist(), smiles)
        return df

    # ------------------------------------------------------------------ likelihood
    def score(
        self, smiles: Sequence[str] | str, k: int = 1, batch_size: int = 512, seed: int | None = 0,
        progress: bool = False,
    ) -> pd.DataFrame:
        """ELBO, reconstruction NLL, KL and importance-weighted log p(x) (``k`` samples) per molecule, in nats.

        One row per input, in order; rows that cannot be encoded have NaN and a ``reason``.
        See :func:`molvae.vae.likelihood.score`.
        """
        from molvae.vae.likelihood import score

        return score(self, smiles, k=k, batch_size=batch_size, seed=seed, progress=progress)

    def nll(
        self, smiles: Sequence[str] | str, k: int = 10, batch_size: int = 512, seed: int | None = 0,
        progress: bool = False,
    ) -> np.ndarray:
        """Anomaly score ``-log p(x)`` (N,): higher = less typical of the training data.  See :func:`molvae.vae.likelihood.nll`."""
        from molvae.vae.likelihood import nll

        return nll(self, smiles, k=k, batch_size=batch_size, seed=seed, progress=progress)

    def token_nll(self, smiles: Sequence[str] | str, as_arrays: bool = False, batch_size: int = 512):
        """Per-token NLL at the posterior mean (long DataFrame, or arrays).  See :func:`molvae.vae.likelihood.token_nll`."""
        from molvae.vae.likelihood import token_nll

        return token_nll(self, smiles, batch_size=batch_size, as_arrays=as_arrays)

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike, half: bool = False, metadata: dict | None = None, **extra) -> None:
        """Write a checkpoint (weights, config, vocabulary, metadata); ``half`` stores float16 weights."""
        state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu() for k, v in self.state_dict().items()}
        save_checkpoint(path, self.checkpoint_dict(state, metadata, **extra))

    def checkpoint_dict(self, state: dict | None = None, metadata: dict | None = None, **extra) -> dict:
        meta = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        meta.update(metadata or {})
        config = dataclasses.asdict(self.config)
        if not config["n_conditions"]:  # an unconditional checkpoint stays as earlier versions wrote it
            del config["n_conditions"]
        elif self.conditions is None:
            raise ValueError("a conditional model needs its condition statistics (model.conditions) to be saved")
        ckpt = {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_VERSION,
            "molvae_version": __version__,
            "model_config": config,
            "tokenizer": self.tokenizer.to_dict(),
            "state_dict": state if state is not None else {k: v.detach().cpu() for k, v in self.state_dict().items()},
            "metadata": meta,
        }
        if self.prior is not None:
            ckpt["prior"] = self.prior.to_dict()
        if self.conditions is not None:
            ckpt["conditions"] = self.conditions.to_dict()  # names, means, stds: plain lists
        ckpt.update(extra)
        return ckpt

    @classmethod
    def from_checkpoint(cls, ckpt: dict, device: str | torch.device = "auto") -> MolVAE:
        try:
            tokenizer = SelfiesTokenizer.from_dict(ckpt["tokenizer"])
            config = from_dict(ModelConfig, ckpt["model_config"])
            model = cls(tokenizer, config)
            state = ckpt["state_dict"]
            if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
                raise TypeError("state_dict must map names to tensors")
            model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
            metadata = ckpt.get("metadata", {})
            if not isinstance(metadata, dict):
                raise TypeError("metadata must be a mapping")
            model.metadata = dict(metadata)
            model.conditions = spec_from_checkpoint(ckpt, model.config)
            if ckpt.get("prior") is not None:
                try:
                    prior = GaussianMixturePrior.from_dict(ckpt["prior"])
                except (KeyError, TypeError, ValueError, RuntimeError) as err:
                    raise ValueError(f"its learned prior is damaged: {err}") from None
                if prior.dim != model.latent_dim:
                    raise ValueError(f"its learned prior has {prior.dim} dimensions, the model {model.latent_dim}")
                model.prior = prior
        except (KeyError, TypeError, RuntimeError, ValueError, AttributeError) as err:
            raise CheckpointError(f"checkpoint content is inconsistent: {err}") from None
        model.eval()
        return model.to(resolve_device(device))

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "auto") -> MolVAE:
        """Load a checkpoint written by :meth:`save` or by training (``best.pt`` / ``last.pt``)."""
        return cls.from_checkpoint(load_checkpoint(path), device=device)


def load_pretrained(name: str = "moses", device: str | torch.device = "auto") -> MolVAE:
    """The model shipped inside the package (``molvae/pretrained/NAME.pt``), no download."""
    from molvae.utils.paths import pretrained_dir

    path = pretrained_dir() / f"{name}.pt"
    if not path.exists():
        available = sorted(p.stem for p in pretrained_dir().glob("*.pt")) if pretrained_dir().exists() else []
        raise FileNotFoundError(f"no shipped model {name!r} (available: {available or 'none'})")
    return MolVAE.load(path, device=device)
