"""Validation of a model during training: ELBO parts, token accuracy, posterior-collapse
diagnostics, greedy reconstruction and the quality of prior samples.

``train()`` calls :func:`evaluate_model` once an epoch (and every ``eval_every`` steps); the
result is a validation row of ``metrics.csv``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from molvae.chem import canonical
from molvae.data import TokenData
from molvae.training.diagnostics import active_units, mutual_information
from molvae.training.losses import elbo_loss
from molvae.vae.model import MolVAE

__all__ = ["evaluate_model", "to_batch", "training_set"]


def to_batch(data: TokenData, idx: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and lengths of rows ``idx``, in sorted row order (condition rows must use ``np.sort(idx)`` too)."""
    idx = np.sort(idx)  # sorted reads are faster on a memory map
    lengths = torch.as_tensor(data.lengths[idx].astype(np.int64))
    width = int(lengths.max())
    ids = torch.as_tensor(np.asarray(data.ids[idx, :width], dtype=np.int64))
    return ids.to(device, non_blocking=True), lengths.to(device)


@torch.no_grad()
def evaluate_model(
    model: MolVAE,
    data: TokenData,
    idx: np.ndarray,
    batch_size: int = 512,
    n_reconstruct: int = 500,
    n_prior: int = 1000,
    train_smiles: set[str] | None = None,
    seed: int = 0,
    conditions: np.ndarray | None = None,
) -> dict[str, float]:
    """Validation ELBO parts, token accuracy, collapse diagnostics, reconstruction and prior-sample quality.

    ``conditions`` (len(data), 2k): a conditional model's condition vectors per data row (all
    properties known); prior samples are drawn with the condition unknown.
    """

    def cond_rows(rows: np.ndarray) -> torch.Tensor | None:
        return None if conditions is None else torch.as_tensor(conditions[np.sort(rows)], device=device)

    model.eval()
    device = model.device
    totals = {"recon": 0.0, "kl": 0.0, "correct": 0, "tokens": 0}
    mus, logvars, kls = [], [], []
    gen = torch.Generator(device="cpu").manual_seed(seed)
    for s in range(0, len(idx), batch_size):
        ids, lengths = to_batch(data, idx[s : s + batch_size], device)
        c = cond_rows(idx[s : s + batch_size])
        mu, logvar = model.encode_ids(ids, lengths, c)
        eps = torch.randn(mu.shape, generator=gen).to(device)
        z = mu + eps * torch.exp(0.5 * logvar)
        logits = model.decode_logits(z, ids[:, :-1], c)
        out = elbo_loss(logits, ids[:, 1:], mu, logvar, beta=1.0, free_bits=0.0)
        n = len(ids)
        totals["recon"] += float(out["recon"]) * n
        totals["kl"] += float(out["kl"]) * n
        mask = ids[:, 1:] != model.tokenizer.pad_id
        totals["correct"] += int(((logits.argmax(-1) == ids[:, 1:]) & mask).sum())
        totals["tokens"] += int(mask.sum())
        mus.append(mu.float().cpu())
        logvars.append(logvar.float().cpu())
        kls.append(out["kl_per_dim"].cpu() * n)
    n_val = len(idx)
    mu_all, logvar_all = torch.cat(mus), torch.cat(logvars)
    au, _ = active_units(mu_all)
    result = {
        "val_recon": totals["recon"] / n_val,
        "val_kl": totals["kl"] / n_val,
        "val_loss": (totals["recon"] + totals["kl"]) / n_val,  # negative ELBO (beta = 1, no free bits)
        "val_token_acc": totals["correct"] / max(totals["tokens"], 1),
        "active_units": au,
        "mutual_info": mutual_information(mu_all[:2000], logvar_all[:2000], seed=seed),
    }
    kl_dim = (torch.stack(kls).sum(0) / n_val).numpy()
    result.update({f"kl_d{d}": float(v) for d, v in enumerate(kl_dim)})
    # greedy exact-match reconstruction from the posterior mean
    ridx = idx[:n_reconstruct]
    if len(ridx):
        ids, lengths = to_batch(data, ridx, device)
        c = cond_rows(ridx)
        mu, _ = model.encode_ids(ids, lengths, c)
        out_ids, _ = model.generate(mu, method="greedy", condition=c)
        want = model.tokenizer.decode_selfies(ids.cpu().numpy())
        got = model.tokenizer.decode_selfies(out_ids.cpu().numpy())
        result["recon_exact"] = float(np.mean([a == b for a, b in zip(want, got)]))
    if n_prior:
        # every decoded string counts here (an under-trained model is rarely faithful)
        df = model.sample(n_prior, seed=seed, progress=False, faithful=False, prior="standard")
        valid = df.smiles[df.valid]
        result["prior_valid"] = float(df.valid.mean())
        result["prior_faithful"] = float(df.faithful.mean())
        result["prior_unique"] = float(valid.nunique() / max(len(valid), 1))
        if train_smiles is not None:
            uniq = set(valid)
            result["prior_novel"] = float(len(uniq - train_smiles) / max(len(uniq), 1))
    model.train()
    return result


def training_set(smiles: Sequence[str], idx: np.ndarray) -> set[str]:
    """Canonical SMILES of the training rows (MOSES is stored canonical: checked, then used as is)."""
    probe = [smiles[i] for i in idx[:500]]
    if all(canonical(s) == s for s in probe):
        return {smiles[i] for i in idx}
    return {c for c in (canonical(smiles[i]) for i in tqdm(idx, desc="canonicalize train", leave=False)) if c}
