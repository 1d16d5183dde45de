"""Training loop: ELBO with KL annealing and free bits, validation, checkpoints, resume.

Files in the run folder: ``config.toml`` (resolved, written before training), ``split.npz``
(validation indices), ``metrics.csv``, ``last.pt`` (for resume), ``best.pt`` (best
validation ELBO), and for a conditional model ``conditions.npz`` (the training molecules'
property values, computed once).  Checkpoints are written atomically.

The parts: :mod:`~molvae.training.prepare` (configuration, data, model, split),
:mod:`~molvae.training.schedules` (learning rate, KL weight), :mod:`~molvae.training.evaluation`
(validation), :mod:`~molvae.training.state` (checkpoints, metrics.csv),
:mod:`~molvae.training.distributed` (torchrun).  A conditional VAE masks each property of each
molecule with probability ``condition_dropout`` at every step (see :mod:`molvae.training.prepare`).
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from molvae.config import ModelConfig, TrainConfig
from molvae.data import BucketBatchSampler
from molvae.training.distributed import DistContext, init_distributed
from molvae.training.evaluation import evaluate_model, to_batch
from molvae.training.losses import elbo_loss
from molvae.training.prepare import Run, prepare_run, resolve_configs
from molvae.training.schedules import Schedules, use_bf16
from molvae.training.state import (
    MetricsLog,
    TrainingError,
    TrainingState,
    read_resume_checkpoint,
    restore,
)
from molvae.vae import conditions as cond_mod
from molvae.vae.model import MolVAE

__all__ = ["TrainingError", "evaluate_model", "seed_everything", "train"]

logger = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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
    overrides ``train_config.conditions`` (see :mod:`molvae.training.prepare`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = read_resume_checkpoint(out / "last.pt") if resume else None
    model_config, cfg, init_model = resolve_configs(model_config, train_config, conditions, ckpt)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    ctx = init_distributed(cfg.device)
    try:
        run = prepare_run(smiles, out, model_config, cfg, ckpt, init_model, ctx, progress)
        del init_model
        trainer = _Trainer(run, out, ctx, ckpt)
        step_limit = stop_after_steps if stop_after_steps is not None else cfg.max_steps
        trainer.fit(step_limit, progress=progress and ctx.is_main)
    finally:
        ctx.close()
    best = out / "best.pt"
    if best.exists():
        return MolVAE.load(best, device=ctx.device)
    run.model.eval()
    return run.model


class _Trainer:
    """The optimizer, the schedules and the state of one run, and the steps that move it on."""

    def __init__(self, run: Run, out: Path, ctx: DistContext, ckpt: dict | None):
        self.run, self.out, self.ctx, self.cfg = run, out, ctx, run.cfg
        self.model, self.device = run.model, ctx.device
        self.last_path, self.best_path = out / "last.pt", out / "best.pt"
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        self.sampler = BucketBatchSampler(run.data.lengths[run.train_idx], self.cfg.batch_size, seed=self.cfg.seed,
                                          rank=ctx.rank, world_size=ctx.world)
        self.schedules = Schedules(self.cfg, len(self.sampler) * self.cfg.epochs)
        self.state = TrainingState() if ckpt is None else restore(ckpt, self.model, self.opt, self.device)
        if ckpt is not None:
            logger.info("resumed from %s at step %d (epoch %d, batch %d)", self.last_path, self.state.step,
                        self.state.epoch, self.state.batch_in_epoch)
        self.net = ctx.wrap(self.model)
        self.meta = {"world_size": ctx.world, "seed": self.cfg.seed, "data_hash": run.data_hash,
                     "n_train": len(run.train_idx), "n_val": len(run.val_idx)}
        if self.cfg.init_from:
            self.meta["init_from"] = self.cfg.init_from
        self.log = MetricsLog(out / "metrics.csv", run.model_config.latent_dim, enabled=ctx.is_main)
        self.use_amp = use_bf16(self.cfg.precision, self.device)
        self.t_start = time.time()
        self.last_lr = self.last_beta = 0.0  # of the latest step, for its log row
        self.last_kl_per_dim = torch.zeros(0)

    def elapsed(self) -> float:
        return round(time.time() - self.t_start, 1)

    # ------------------------------------------------------------------ the loop
    def fit(self, step_limit: int | None, progress: bool) -> None:
        """Train until the last epoch, ``step_limit`` steps, ``max_hours`` or early stopping."""
        s, cfg = self.state, self.cfg
        if step_limit and s.step >= step_limit:  # a resumed run that already reached max_steps: nothing to do
            logger.info("step %d already reaches the step limit %d: nothing to train", s.step, step_limit)
            return
        self.model.train()
        bar = tqdm(total=self.schedules.total_steps, initial=s.step, desc="train", unit="step", disable=not progress)
        stop = False
        try:
            while s.epoch < cfg.epochs and not stop:
                self.sampler.set_epoch(s.epoch)
                batches = self.sampler.batches()
                for b in range(s.batch_in_epoch, len(batches)):
                    out_of_time = self.train_step(batches[b])
                    end_of_epoch = b == len(batches) - 1
                    if s.step % cfg.log_every == 0 or end_of_epoch:
                        self.log_window(bar)
                    bar.update(1)
                    if cfg.eval_every and s.step % cfg.eval_every == 0 and not end_of_epoch:
                        stop = self.validate(b + 1)
                    if s.step % cfg.checkpoint_every == 0 and not end_of_epoch:
                        self.checkpoint(self.last_path, b + 1)
                    if (step_limit and s.step >= step_limit) or out_of_time or stop:
                        if not end_of_epoch:  # stop mid-epoch: resume starts at the next batch
                            self.checkpoint(self.last_path, b + 1)
                            return
                        stop = True
                        break
                s.batch_in_epoch = 0
                s.epoch += 1
                stop = self.validate(0) or stop
                self.checkpoint(self.last_path, 0)
        finally:
            bar.close()

    def train_step(self, rows: np.ndarray) -> bool:
        """One optimizer step on the training rows ``rows``; True when ``max_hours`` has run out (on any rank)."""
        run, cfg, s, ctx = self.run, self.cfg, self.state, self.ctx
        ids, lengths = to_batch(run.data, run.train_idx[rows], self.device)
        c = None
        if run.cond_std is not None:  # each property masked (unknown) with probability condition_dropout
            c = cond_mod.mask_conditions(run.cond_std[np.sort(run.train_idx[rows])], cfg.condition_dropout, self.device)
        lr, beta = self.schedules.lr(s.step), self.schedules.beta(s.step)
        for g in self.opt.param_groups:
            g["lr"] = lr
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
            res = self.net(ids, lengths, word_dropout=cfg.word_dropout, condition=c)
            losses = elbo_loss(res["logits"], res["targets"], res["mu"], res["logvar"], beta, cfg.free_bits)
        loss = losses["loss"]
        out_of_time = bool(cfg.max_hours and time.time() - self.t_start > cfg.max_hours * 3600)
        shown = {k: losses[k].detach() for k in ("loss", "recon", "kl")}
        if ctx.distributed:  # global means for logging, one NaN verdict and one time verdict for all ranks
            shared = ctx.mean(torch.stack([shown["loss"].float(), shown["recon"].float(), shown["kl"].float(),
                                           torch.tensor(float(out_of_time), device=loss.device)]))
            shown = dict(loss=shared[0], recon=shared[1], kl=shared[2])
            out_of_time = bool(shared[3] > 0)
        if not torch.isfinite(shown["loss"]):
            raise self._error(f"loss became {loss.detach().item()}", "")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        clip = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
        if not torch.isfinite(torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)):
            raise self._error("gradient became NaN/inf", " before the update")
        self.opt.step()
        s.step += 1
        w = s.window
        with torch.no_grad():
            mask = res["targets"] != self.model.tokenizer.pad_id
            w["correct"] += int(((res["logits"].argmax(-1) == res["targets"]) & mask).sum())
            w["tokens"] += int(mask.sum())
        for k in ("loss", "recon", "kl"):
            w[k] += float(shown[k])
        w["n"] += 1
        self.last_lr, self.last_beta, self.last_kl_per_dim = lr, beta, losses["kl_per_dim"]
        return out_of_time

    def _error(self, what: str, when: str) -> TrainingError:
        s = self.state
        kept = self.last_path if self.last_path.exists() else "none written yet"
        return TrainingError(
            f"{what} at step {s.step} (epoch {s.epoch}); training stopped{when}. The last good checkpoint is kept: "
            f"{kept}. Lower the learning rate (--lr) or tighten gradient clipping."
        )

    def log_window(self, bar) -> None:
        """A train row of metrics.csv: the means over the log interval; the interval starts again."""
        s, w = self.state, self.state.window
        n = w["n"]
        row = {"step": s.step, "epoch": s.epoch, "phase": "train", "loss": w["loss"] / n, "recon": w["recon"] / n,
               "kl": w["kl"] / n, "beta": self.last_beta, "lr": self.last_lr,
               "token_acc": w["correct"] / max(w["tokens"], 1), "elapsed_s": self.elapsed()}
        row.update({f"kl_d{d}": float(v) for d, v in enumerate(self.last_kl_per_dim)})
        self.log.write(row)
        bar.set_postfix(loss=f"{row['loss']:.2f}", recon=f"{row['recon']:.2f}", kl=f"{row['kl']:.1f}",
                        beta=f"{self.last_beta:.3f}", lr=f"{self.last_lr:.1e}")
        s.reset_window()

    # ------------------------------------------------------------------ validation and checkpoints
    def validate(self, batch_in_epoch: int) -> bool:
        """Rank 0 evaluates, logs and keeps the best model; True (on every rank) when early stopping says stop."""
        if not self.ctx.is_main:
            return self.ctx.share_verdict(False)
        run, cfg, s = self.run, self.cfg, self.state
        res = evaluate_model(self.model, run.data, run.val_idx, n_prior=cfg.n_prior_samples, train_smiles=run.train_set,
                             seed=cfg.seed, conditions=run.cond_full)
        row = {"step": s.step, "epoch": s.epoch, "phase": "val", "beta": self.schedules.beta(s.step),
               "lr": self.opt.param_groups[0]["lr"], "elapsed_s": self.elapsed()}
        row.update(res)
        self.log.write(row)
        _log_validation(s.step, res)
        if s.improved(res["val_loss"]):
            self.checkpoint(self.best_path, batch_in_epoch)
        verdict = cfg.early_stopping_patience > 0 and s.bad_evals >= cfg.early_stopping_patience
        return self.ctx.share_verdict(verdict)

    def checkpoint(self, path: Path, batch_in_epoch: int) -> None:
        if self.ctx.is_main:
            self.state.save(path, self.model, self.opt, self.cfg, self.meta, batch_in_epoch, self.device)


def _log_validation(step: int, res: dict) -> None:
    logger.info(
        "step %d: val loss %.3f recon %.3f kl %.2f acc %.3f AU %d MI %.2f exact %.3f prior valid/unique/novel %s",
        step, res["val_loss"], res["val_recon"], res["val_kl"], res["val_token_acc"], res["active_units"],
        res["mutual_info"], res.get("recon_exact", float("nan")),
        "/".join(f"{res.get(k, float('nan')):.3f}" for k in ("prior_valid", "prior_unique", "prior_novel")),
    )
