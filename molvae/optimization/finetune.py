"""Fine-tuning the decoder on the best molecules found so far, during a run.

Weighted retraining (Tripp et al. 2020) and LOLBO's periodic updates, restricted to the
decoder: every ``every`` oracle calls, a few gradient steps on the reconstruction loss of the
top scored molecules (rank weights ``1 / (kappa * N + rank)``), with z drawn from the frozen
encoder's posterior of each molecule.  The encoder and the token embedding it shares with the
decoder stay fixed, so the latent means already stored for the scored molecules stay valid;
what changes is that greedy decoding of points near a good molecule's mean gives that molecule
(or its close relatives) more often.  The strategy works on a copy of the user's model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
import torch

from molvae.training.losses import reconstruction_nll

__all__ = ["DecoderTuner"]

logger = logging.getLogger(__name__)


class DecoderTuner:
    """Periodic decoder fine-tuning on the top molecules (see the module docstring)."""

    def __init__(self, model, every: int = 1000, top: int = 256, steps: int = 50, batch_size: int = 64,
                 lr: float = 3e-4, kappa: float = 0.05, seed: int = 0) -> None:
        if every < 1 or top < 1 or steps < 1 or batch_size < 1 or lr <= 0:
            raise ValueError("finetune: every, top, steps and batch_size must be >= 1 and lr > 0")
        self.model = model
        self.every, self.top, self.steps, self.batch_size = int(every), int(top), int(steps), int(batch_size)
        self.lr, self.kappa = float(lr), float(kappa)
        self.gen = torch.Generator().manual_seed(int(seed))
        self.params = [p for name, p in model.named_parameters()
                       if name.split(".")[0] in ("decoder", "latent_to_hidden", "output")]
        self.opt = torch.optim.Adam(self.params, lr=self.lr)
        self.last_at = 0
        self.n_updates = 0
        self.seconds = 0.0
        self.losses: list[tuple[float, float]] = []  # (before, after) mean NLL of each update

    def due(self, n_calls: int) -> bool:
        return n_calls - self.last_at >= self.every

    def update(self, smiles: Sequence[str], utilities: np.ndarray, n_calls: int) -> bool:
        """Fine-tune on the ``top`` best of ``smiles`` (by ``utilities``); returns whether it ran."""
        self.last_at = n_calls
        u = np.asarray(utilities, dtype=np.float64)
        ok = np.flatnonzero(np.isfinite(u))
        if len(ok) < 8:
            return False
        best = ok[np.argsort(-u[ok])][: self.top]
        model = self.model
        batch = model.tokenizer.encode([smiles[i] for i in best])
        if len(batch) < 8:
            return False
        t0 = time.time()
        dev = model.device
        ids = torch.as_tensor(batch.ids, device=dev)
        lengths = torch.as_tensor(batch.lengths, device=dev)
        ranks = np.argsort(np.argsort(-u[best][batch.index]))
        w = 1.0 / (self.kappa * len(ranks) + ranks)
        probs = torch.as_tensor(w / w.sum(), dtype=torch.float)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            mu, logvar = model.encode_ids(ids[:, : int(lengths.max())], lengths)
        std = torch.exp(0.5 * logvar)
        before = self._nll(ids, lengths, mu)
        # only the decoder learns: the encoder and the shared embedding get no gradients
        tuned = {id(p) for p in self.params}
        frozen = [p for p in model.parameters() if id(p) not in tuned and p.requires_grad]
        for p in frozen:
            p.requires_grad_(False)
        model.train()
        try:
            for _ in range(self.steps):
                rows = torch.multinomial(probs, self.batch_size, replacement=True, generator=self.gen)
                z = mu[rows] + std[rows] * torch.randn(mu[rows].shape, generator=self.gen).to(dev)
                loss = self._loss(ids[rows], lengths[rows], z)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.params, 1.0)
                self.opt.step()
        finally:
            for p in frozen:
                p.requires_grad_(True)
        after = self._nll(ids, lengths, mu)
        model.train(was_training)
        self.losses.append((before, after))
        self.n_updates += 1
        self.seconds += time.time() - t0
        logger.debug("decoder fine-tuned on %d molecules: NLL at the means %.3f -> %.3f", len(batch), before, after)
        return True

    def _loss(self, ids: torch.Tensor, lengths: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        ids = ids[:, : int(lengths.max())]
        logits = self.model.decode_logits(z, ids[:, :-1])
        return reconstruction_nll(logits, ids[:, 1:], self.model.tokenizer.pad_id).mean()

    @torch.no_grad()
    def _nll(self, ids: torch.Tensor, lengths: torch.Tensor, mu: torch.Tensor) -> float:
        self.model.eval()
        return float(self._loss(ids, lengths, mu))
