"""Training loop: ELBO with KL annealing and free bits, validation, checkpoints, resume.

Files in the run folder: ``config.toml`` (resolved, written before training), ``split.npz``
(validation indices), ``metrics.csv``, ``last.pt`` (for resume), ``best.pt`` (best
validation ELBO), and for a conditional model ``conditions.npz`` (the training molecules'
property values, computed once).  Checkpoints are written atomically.

A conditional VAE (``conditions=[...]``, :mod:`molvae.vae.conditions`): the properties are
computed once for the training set, molecules where one cannot be computed are counted and
left out, the values are standardized with the training rows' mean and std (kept in the
checkpoint), and each step masks each property of each molecule with probability
``condition_dropout``.  Fine-tuning from an unconditional model (``init_from``) copies its
weights and starts the new condition inputs at zero, so step 0 computes the base model's
function; from a conditional model, its conditions and statistics are kept.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import logging
import math
import os
import random
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from molvae.chem import canonical
from molvae.config import ModelConfig, TrainConfig, from_dict, save_config
from molvae.data import BucketBatchSampler, TokenData, tokenize_file
from molvae.training.diagnostics import active_units, mutual_information
from molvae.training.losses import elbo_loss, kl_beta
from molvae.vae import conditions as cond_mod
from molvae.vae.model import MolVAE, load_checkpoint, resolve_device, save_checkpoint

__all__ = ["TrainingError", "evaluate_model", "seed_everything", "train"]

logger = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss became NaN)."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _distributed_context(device_name: str) -> tuple[int, int, torch.device, bool]:
    """(rank, world_size, device, initialized_here) from torchrun's environment; (0, 1, device, False) otherwise."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, resolve_device(device_name), False
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    created = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        created = True
    return dist.get_rank(), dist.get_world_size(), device, created


def _lr_factor(step: int, total: int, cfg: TrainConfig) -> float:
    if cfg.lr_schedule == "constant" or total <= 0:
        return 1.0
    if cfg.lr_schedule == "cosine":
        frac = min(step / total, 1.0)
        floor = cfg.lr_min / cfg.lr if cfg.lr > 0 else 0.0
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * frac))
    raise ValueError(f"unknown lr_schedule {cfg.lr_schedule!r}; use cosine or constant")


def _use_bf16(precision: str, device: torch.device) -> bool:
    """Whether training steps run under bfloat16 autocast (``TrainConfig.precision``)."""
    if precision == "auto":
        return device.type == "cuda"
    if precision == "fp32":
        return False
    if precision == "bf16":
        return True
    raise ValueError(f"unknown precision {precision!r}; use auto, fp32 or bf16")


def _to_batch(data: TokenData, idx: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
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
        ids, lengths = _to_batch(data, idx[s : s + batch_size], device)
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
        ids, lengths = _to_batch(data, ridx, device)
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


def _training_set(smiles: Sequence[str], idx: np.ndarray) -> set[str]:
    """Canonical SMILES of the training rows (MOSES is stored canonical: checked, then used as is)."""
    probe = [smiles[i] for i in idx[:500]]
    if all(canonical(s) == s for s in probe):
        return {smiles[i] for i in idx}
    return {c for c in (canonical(smiles[i]) for i in tqdm(idx, desc="canonicalize train", leave=False)) if c}


METRIC_FIELDS = [
    "step", "epoch", "phase", "elapsed_s", "loss", "recon", "kl", "beta", "lr", "token_acc",
    "val_loss", "val_recon", "val_kl", "val_token_acc", "active_units", "mutual_info", "recon_exact",
    "prior_valid", "prior_unique", "prior_novel", "prior_faithful",
]


class _MetricsLog:
    """metrics.csv: one row per log interval (phase=train) or validation (phase=val)."""

    def __init__(self, path: Path, latent_dim: int):
        self.path = path
        self.fields: list[str] | None = METRIC_FIELDS + [f"kl_d{d}" for d in range(latent_dim)]
        if path.exists():
            with open(path) as fh:
                header = fh.readline().strip()
            if header:
                self.fields = header.split(",")
            else:
                self.fields = METRIC_FIELDS + [f"kl_d{d}" for d in range(latent_dim)]
                path.unlink()

    def write(self, row: dict) -> None:
        if not self.path.exists():
            with open(self.path, "w", newline="") as fh:
                csv.writer(fh).writerow(self.fields)
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, self.fields, extrasaction="ignore").writerow(row)


def _data_hash(smiles: Sequence[str]) -> str:
    h = hashlib.sha256()
    for s in smiles:
        h.update(str(s).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def train(
    smiles: Sequence[str],
    out_dir: str | os.PathLike,
    model_config: ModelConfig | None = None,
    train_config: TrainConfig | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_after_steps: int | None = None,
    conditions: Sequence[str] | None = None,
) -> MolVAE:
    """Train a VAE on ``smiles`` into ``out_dir`` and return the best model (by validation ELBO).

    ``resume=True`` continues from ``out_dir/last.pt`` with its stored configuration, so a
    stopped run goes on exactly where it was.  ``stop_after_steps`` ends the run after that
    many optimizer steps in total (used for tests of interruption).  ``conditions``: property
    names (:mod:`molvae.properties`) for a conditional VAE, e.g. ``["logp", "qed"]``; it
    overrides ``train_config.conditions`` (see the module docstring).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    last_path, best_path = out / "last.pt", out / "best.pt"
    ckpt = None
    if resume:
        if not last_path.exists():
            raise FileNotFoundError(f"--resume: no {last_path} to resume from")
        ckpt = load_checkpoint(last_path)
        missing = [k for k in ("train_config", "optimizer", "step", "epoch", "batch_in_epoch") if k not in ckpt]
        if missing:
            raise TrainingError(f"--resume: {last_path} holds a model but no training state ({', '.join(missing)} missing)")
        model_config = from_dict(ModelConfig, ckpt["model_config"])
        stored = from_dict(TrainConfig, ckpt["train_config"])
        if conditions is not None and cond_mod.check_names(conditions) != stored.conditions:
            raise TrainingError(f"--resume: the run conditions on {list(stored.conditions)}, not {list(conditions)}")
        train_config, conditions = stored, None
    model_config = model_config or ModelConfig()
    cfg = train_config or TrainConfig()
    if conditions is not None:
        cfg = dataclasses.replace(cfg, conditions=tuple(conditions))
    if cfg.conditions:
        cfg = dataclasses.replace(cfg, conditions=cond_mod.check_names(cfg.conditions))
    init_model = None
    if cfg.init_from and ckpt is None:
        init_model = _load_init_model(cfg.init_from)
        sizes = {k: v for k, v in dataclasses.asdict(model_config).items() if k not in ("vocab_size", "max_length")}
        sizes.pop("n_conditions")  # set by the conditions, not a size
        kept = {k: v for k, v in dataclasses.asdict(init_model.config).items() if k in sizes}
        if sizes != kept:
            logger.warning("init_from=%s: its model sizes are kept (%s); the [model] settings given are not used",
                           cfg.init_from, ", ".join(f"{k}={v}" for k, v in kept.items() if sizes[k] != v))
        model_config = init_model.config
        if init_model.conditions is not None:  # a conditional base: its conditions and statistics go on
            if cfg.conditions and cfg.conditions != init_model.conditions.names:
                raise ValueError(f"init_from={cfg.init_from} conditions on {list(init_model.conditions.names)}, "
                                 f"not {list(cfg.conditions)}: fine-tune with its conditions")
            cfg = dataclasses.replace(cfg, conditions=init_model.conditions.names)
    if model_config.n_conditions and model_config.n_conditions != len(cfg.conditions):
        raise ValueError(f"model_config.n_conditions={model_config.n_conditions} but {len(cfg.conditions)} condition "
                         "names are given (set conditions; n_conditions follows from them)")
    model_config = dataclasses.replace(model_config, n_conditions=len(cfg.conditions))
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    rank, world, device, created_group = _distributed_context(cfg.device)
    if world > 1:
        import torch.distributed as dist
    smiles = list(smiles)
    if cfg.max_molecules and len(smiles) > cfg.max_molecules:
        pick = np.random.default_rng(cfg.seed).choice(len(smiles), cfg.max_molecules, replace=False)
        smiles = [smiles[i] for i in np.sort(pick)]
    if not smiles:
        raise ValueError("no training molecules")
    data_hash = _data_hash(smiles)
    if ckpt is not None and ckpt["metadata"].get("data_hash") != data_hash:
        raise TrainingError("--resume: the training data differ from the run being resumed")

    from molvae.tokenizer import SelfiesTokenizer

    tokenizer = SelfiesTokenizer.from_dict(ckpt["tokenizer"]) if ckpt else None
    if init_model is not None:
        tokenizer = init_model.tokenizer
    if rank != 0:
        dist.barrier()  # rank 0 builds the token cache; the others then read it
    data = tokenize_file(smiles, tokenizer=tokenizer, max_length=model_config.max_length or None,
                         progress=progress and rank == 0)
    if world > 1 and rank == 0:
        dist.barrier()
    progress = progress and rank == 0
    if data.n_failed:
        logger.warning("%d of %d training molecules could not be tokenized and are left out", data.n_failed, data.n_input)
    if len(data) < 2:
        raise ValueError("need at least 2 tokenizable molecules to train")
    model = MolVAE(data.tokenizer, model_config).to(device)
    model_config = model.config
    usable = np.arange(len(data))
    values = None  # raw property values per data row (conditional models)
    if cfg.conditions:
        values = _condition_values(out, data, smiles, cfg.conditions, data_hash, progress, rank)
        usable = np.flatnonzero(np.isfinite(values).all(axis=1))
        if len(usable) < 2:
            raise ValueError(f"need at least 2 molecules whose {', '.join(cfg.conditions)} RDKit can compute")
    if init_model is not None:
        if cfg.conditions and init_model.conditions is None:  # unconditional base: condition inputs start at zero
            model.load_state_dict(cond_mod.widen_state(init_model.state_dict(), model.state_dict()))
        else:
            model.load_state_dict(init_model.state_dict())
        model.conditions = init_model.conditions
        logger.info("initialized from %s (%d of %d molecules fit its vocabulary and length)",
                    cfg.init_from, len(data), data.n_input)
        del init_model

    # validation split: fixed by the seed, saved with the run (over the rows whose conditions are known)
    perm = usable[np.random.default_rng(cfg.seed).permutation(len(usable))]
    n_val = min(cfg.max_val, int(round(cfg.val_fraction * len(usable))))
    if cfg.val_fraction > 0:
        n_val = max(n_val, 1)
    if len(usable) - n_val < 1:
        n_val = 0
    val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    if n_val == 0:  # no held-out split asked for: diagnostics on (part of) the training set
        val_idx = train_idx[: min(len(train_idx), cfg.max_val)]
        logger.info("val_fraction=0: validation metrics are computed on training molecules")
    cond_std = cond_full = None  # standardized values (N, k) and full condition vectors (N, 2k) per data row
    if cfg.conditions:
        if ckpt is not None:
            model.conditions = cond_mod.spec_from_checkpoint(ckpt, model_config)
        elif model.conditions is None:
            model.conditions = cond_mod.ConditionSpec.fit(cfg.conditions, values[train_idx])
        spec = model.conditions
        cond_full = spec.vector(np.where(np.isfinite(values), values, 0.0))
        cond_std = cond_full[:, : len(spec.names)]
        logger.info("conditions %s: mean %s, std %s", ", ".join(spec.names),
                    ", ".join(f"{m:.3g}" for m in spec.mean), ", ".join(f"{s:.3g}" for s in spec.std))
    if rank == 0:
        np.savez(out / "split.npz", val=data.index[val_idx], train=data.index[train_idx])
        if not resume:
            save_config(out / "config.toml", model_config, cfg)
    train_set = _training_set(smiles, data.index[train_idx]) if cfg.n_prior_samples and rank == 0 else None

    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sampler = BucketBatchSampler(data.lengths[train_idx], cfg.batch_size, seed=cfg.seed, rank=rank, world_size=world)
    steps_per_epoch = len(sampler)
    total_steps = steps_per_epoch * cfg.epochs
    step, epoch, start_batch, best, bad_evals = 0, 0, 0, float("inf"), 0
    if ckpt is not None:
        model.load_state_dict(ckpt["state_dict"])
        opt.load_state_dict(ckpt["optimizer"])
        step, epoch, start_batch = int(ckpt["step"]), int(ckpt["epoch"]), int(ckpt["batch_in_epoch"])
        best, bad_evals = float(ckpt["best_val"]), int(ckpt["bad_evals"])
        torch.set_rng_state(ckpt["rng_cpu"])
        if device.type == "cuda" and "rng_cuda" in ckpt:
            torch.cuda.set_rng_state(ckpt["rng_cuda"])
        logger.info("resumed from %s at step %d (epoch %d, batch %d)", last_path, step, epoch, start_batch)

    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    meta = {"world_size": world, "seed": cfg.seed, "data_hash": data_hash, "n_train": len(train_idx), "n_val": len(val_idx)}
    if cfg.init_from:
        meta["init_from"] = cfg.init_from
    log = _MetricsLog(out / "metrics.csv", model_config.latent_dim)
    use_amp = _use_bf16(cfg.precision, device)
    t_start = time.time()

    def beta_at(s: int) -> float:
        return kl_beta(s, cfg.kl_schedule, cfg.beta, cfg.kl_warmup_steps, cfg.kl_start, total_steps, cfg.kl_cycles, cfg.kl_cycle_ratio)

    def checkpoint(path: Path, batch_in_epoch: int) -> None:
        if rank != 0:
            return
        extra = {
            "train_config": dataclasses.asdict(cfg),
            "optimizer": opt.state_dict(),
            "step": step,
            "epoch": epoch,
            "batch_in_epoch": batch_in_epoch,
            "best_val": best,
            "bad_evals": bad_evals,
            "rng_cpu": torch.get_rng_state(),
            "log_window": {k: float(v) for k, v in window.items()},
        }
        if device.type == "cuda":
            extra["rng_cuda"] = torch.cuda.get_rng_state()
        save_checkpoint(path, model.checkpoint_dict(metadata=dict(meta, step=step, epoch=epoch), **extra))

    def validate(batch_in_epoch: int) -> bool:
        """Evaluate, log, keep the best; True when early stopping says stop."""
        nonlocal best, bad_evals
        if rank != 0:  # rank 0 evaluates; the others wait for its verdict
            flag = torch.zeros(1)
            dist.broadcast(flag, src=0)
            return bool(flag.item())
        res = evaluate_model(model, data, val_idx, n_prior=cfg.n_prior_samples, train_smiles=train_set, seed=cfg.seed,
                             conditions=cond_full)
        row = {"step": step, "epoch": epoch, "phase": "val", "beta": beta_at(step), "lr": opt.param_groups[0]["lr"],
               "elapsed_s": round(time.time() - t_start, 1)}
        row.update(res)
        log.write(row)
        logger.info(
            "step %d: val loss %.3f recon %.3f kl %.2f acc %.3f AU %d MI %.2f exact %.3f prior valid/unique/novel %s",
            step, res["val_loss"], res["val_recon"], res["val_kl"], res["val_token_acc"], res["active_units"],
            res["mutual_info"], res.get("recon_exact", float("nan")),
            "/".join(f"{res.get(k, float('nan')):.3f}" for k in ("prior_valid", "prior_unique", "prior_novel")),
        )
        if res["val_loss"] < best - 1e-4:
            best, bad_evals = res["val_loss"], 0
            checkpoint(best_path, batch_in_epoch)
        else:
            bad_evals += 1
        verdict = cfg.early_stopping_patience > 0 and bad_evals >= cfg.early_stopping_patience
        if world > 1:
            dist.broadcast(torch.tensor([float(verdict)]), src=0)
        return verdict

    model.train()
    stop = False
    step_limit = stop_after_steps if stop_after_steps is not None else cfg.max_steps
    if step_limit and step >= step_limit:  # a resumed run that already reached max_steps: nothing to do
        logger.info("step %d already reaches the step limit %d: nothing to train", step, step_limit)
        return _finish(model, best_path, device)
    bar = tqdm(total=total_steps, initial=step, desc="train", unit="step", disable=not progress)
    window = {"loss": 0.0, "recon": 0.0, "kl": 0.0, "correct": 0, "tokens": 0, "n": 0}
    if ckpt is not None and ckpt.get("log_window"):  # the log interval running when the run stopped
        window.update({k: (int(v) if k in ("correct", "tokens", "n") else v) for k, v in ckpt["log_window"].items()})
    try:
        while epoch < cfg.epochs and not stop:
            sampler.set_epoch(epoch)
            batches = sampler.batches()
            for b in range(start_batch, len(batches)):
                ids, lengths = _to_batch(data, train_idx[batches[b]], device)
                c = None
                if cond_std is not None:  # each property masked (unknown) with probability condition_dropout
                    c = cond_mod.mask_conditions(cond_std[np.sort(train_idx[batches[b]])], cfg.condition_dropout, device)
                lr = cfg.lr * _lr_factor(step, total_steps, cfg)
                for g in opt.param_groups:
                    g["lr"] = lr
                beta = beta_at(step)
                with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
                    res = net(ids, lengths, word_dropout=cfg.word_dropout, condition=c)
                    losses = elbo_loss(res["logits"], res["targets"], res["mu"], res["logvar"], beta, cfg.free_bits)
                loss = losses["loss"]
                out_of_time = bool(cfg.max_hours and time.time() - t_start > cfg.max_hours * 3600)
                if world > 1:  # global means for logging and one NaN / time verdict for all ranks
                    shared = torch.stack([losses["loss"].detach().float(), losses["recon"].detach().float(),
                                          losses["kl"].detach().float(), torch.tensor(float(out_of_time) * world,
                                          device=loss.device)]).cpu()
                    dist.all_reduce(shared)
                    shared /= world
                    losses = dict(losses, loss_global=shared[0], recon=shared[1], kl=shared[2])
                    out_of_time = bool(shared[3] > 0)
                if not torch.isfinite(losses.get("loss_global", loss)):
                    raise TrainingError(
                        f"loss became {loss.detach().item()} at step {step} (epoch {epoch}); training stopped. "
                        f"The last good checkpoint is kept: {last_path if last_path.exists() else 'none written yet'}. "
                        "Lower the learning rate (--lr) or tighten gradient clipping."
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
                if not torch.isfinite(norm):
                    raise TrainingError(
                        f"gradient became NaN/inf at step {step} (epoch {epoch}); training stopped before the update. "
                        f"The last good checkpoint is kept: {last_path if last_path.exists() else 'none written yet'}. "
                        "Lower the learning rate (--lr) or tighten gradient clipping."
                    )
                opt.step()
                step += 1
                with torch.no_grad():
                    mask = res["targets"] != model.tokenizer.pad_id
                    window["correct"] += int(((res["logits"].argmax(-1) == res["targets"]) & mask).sum())
                    window["tokens"] += int(mask.sum())
                window["loss"] += float(losses.get("loss_global", losses["loss"]).detach())
                for k in ("recon", "kl"):
                    window[k] += float(losses[k].detach())
                window["n"] += 1
                if step % cfg.log_every == 0 or b == len(batches) - 1:
                    n = window["n"]
                    row = {"step": step, "epoch": epoch, "phase": "train", "loss": window["loss"] / n,
                           "recon": window["recon"] / n, "kl": window["kl"] / n, "beta": beta, "lr": lr,
                           "token_acc": window["correct"] / max(window["tokens"], 1),
                           "elapsed_s": round(time.time() - t_start, 1)}
                    row.update({f"kl_d{d}": float(v) for d, v in enumerate(losses["kl_per_dim"])})
                    if rank == 0:
                        log.write(row)
                    bar.set_postfix(loss=f"{row['loss']:.2f}", recon=f"{row['recon']:.2f}", kl=f"{row['kl']:.1f}",
                                    beta=f"{beta:.3f}", lr=f"{lr:.1e}")
                    window = dict.fromkeys(window, 0)
                    window["loss"] = window["recon"] = window["kl"] = 0.0
                bar.update(1)
                end_of_epoch = b == len(batches) - 1
                if cfg.eval_every and step % cfg.eval_every == 0 and not end_of_epoch:
                    stop = validate(b + 1)
                if step % cfg.checkpoint_every == 0 and not end_of_epoch:
                    checkpoint(last_path, b + 1)
                if step_limit and step >= step_limit or out_of_time or stop:
                    if not end_of_epoch:
                        checkpoint(last_path, b + 1)
                        return _finish(model, best_path, device)
                    stop = True
                    break
            start_batch = 0
            epoch += 1
            stop = validate(0) or stop
            checkpoint(last_path, 0)
    finally:
        bar.close()
        if created_group:
            import torch.distributed as dist

            dist.destroy_process_group()
    return _finish(model, best_path, device)


def _condition_values(
    out: Path, data: TokenData, smiles: Sequence[str], names: Sequence[str], data_hash: str, progress: bool, rank: int
) -> np.ndarray:
    """Raw property values (len(data), k) of the tokenized training molecules, NaN where RDKit fails.

    Computed once per run and kept in ``out/conditions.npz`` (a resumed run reads them back).
    """
    path = out / "conditions.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                if (f["names"].tolist() == list(names) and str(f["data_hash"]) == data_hash
                        and f["values"].shape == (len(data), len(names))):
                    return f["values"]
        except (OSError, KeyError, ValueError) as err:
            logger.warning("%s is unreadable (%s): computing the properties again", path, err)
    rows = [smiles[i] for i in data.index]
    values, _ = cond_mod.training_values(rows, names, progress=progress)
    if rank == 0:
        tmp = out / f".conditions.tmp{os.getpid()}.npz"
        np.savez(tmp, names=np.array(list(names)), data_hash=np.array(data_hash), values=values)
        os.replace(tmp, path)
    return values


def _load_init_model(source: str) -> MolVAE:
    """The model ``init_from`` names: 'pretrained' (or 'pretrained:NAME') or a checkpoint path."""
    from molvae.vae.model import load_pretrained

    if source == "pretrained" or source.startswith("pretrained:"):
        return load_pretrained(source.partition(":")[2] or "moses", device="cpu")
    return MolVAE.load(source, device="cpu")


def _finish(model: MolVAE, best_path: Path, device: torch.device) -> MolVAE:
    if best_path.exists():
        return MolVAE.load(best_path, device=device)
    model.eval()
    return model

