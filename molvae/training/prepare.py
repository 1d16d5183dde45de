"""Everything a training run settles before its first step: the configuration (given, resumed
or taken from the model ``init_from`` names), the tokenized data, the model, the condition
values of a conditional VAE, and the validation split.

A conditional VAE (``conditions=[...]``, :mod:`molvae.vae.conditions`): the properties are
computed once for the training set, molecules where one cannot be computed are counted and
left out, the values are standardized with the training rows' mean and std (kept in the
checkpoint).  Fine-tuning from an unconditional model (``init_from``) copies its weights and
starts the new condition inputs at zero, so step 0 computes the base model's function; from a
conditional model, its conditions and statistics are kept.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from molvae.config import ModelConfig, TrainConfig, from_dict, save_config
from molvae.data import TokenData, tokenize_file
from molvae.data.tokens import hash_smiles
from molvae.tokenizer import SelfiesTokenizer
from molvae.training.distributed import DistContext
from molvae.training.evaluation import training_set
from molvae.training.state import TrainingError, condition_values
from molvae.utils.io import atomic_path
from molvae.vae import conditions as cond_mod
from molvae.vae.checkpoint import load_pretrained
from molvae.vae.model import MolVAE

__all__ = ["Run", "resolve_configs", "prepare_run", "load_init_model"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Run:
    """A prepared run: the model (on its device), the token data and its split, the data hash, and
    for a conditional model the full condition vectors (len(data), 2k) and their standardized
    values (len(data), k) per data row."""

    model: MolVAE
    model_config: ModelConfig
    cfg: TrainConfig
    data: TokenData
    train_idx: np.ndarray
    val_idx: np.ndarray
    data_hash: str
    cond_full: np.ndarray | None = None
    cond_std: np.ndarray | None = None
    train_set: set[str] | None = None


def load_init_model(source: str) -> MolVAE:
    """The model ``init_from`` names: 'pretrained' (or 'pretrained:NAME') or a checkpoint path."""

    if source == "pretrained" or source.startswith("pretrained:"):
        return load_pretrained(source.partition(":")[2] or "moses", device="cpu")
    return MolVAE.load(source, device="cpu")


def resolve_configs(
    model_config: ModelConfig | None, train_config: TrainConfig | None, conditions: Sequence[str] | None,
    ckpt: dict | None,
) -> tuple[ModelConfig, TrainConfig, MolVAE | None]:
    """The model and training configuration a run uses, and the ``init_from`` model (None: none).

    A resumed run (``ckpt``: its ``last.pt``) keeps its stored configuration; ``conditions``
    overrides ``train_config.conditions``; ``init_from`` keeps that model's sizes (with a
    warning when others were given) and, for a conditional base, its conditions.
    """
    if ckpt is not None:
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
        init_model = load_init_model(cfg.init_from)
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
    return dataclasses.replace(model_config, n_conditions=len(cfg.conditions)), cfg, init_model


def _subsample(smiles: Sequence[str], cfg: TrainConfig) -> list[str]:
    smiles = list(smiles)
    if cfg.max_molecules and len(smiles) > cfg.max_molecules:
        pick = np.random.default_rng(cfg.seed).choice(len(smiles), cfg.max_molecules, replace=False)
        smiles = [smiles[i] for i in np.sort(pick)]
    if not smiles:
        raise ValueError("no training molecules")
    return smiles


def _split(usable: np.ndarray, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(validation rows, training rows): fixed by the seed, over the rows whose conditions are known."""
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
    return val_idx, train_idx


def prepare_run(
    smiles: Sequence[str], out: Path, model_config: ModelConfig, cfg: TrainConfig, ckpt: dict | None,
    init_model: MolVAE | None, ctx: DistContext, progress: bool,
) -> Run:
    """Tokenize, build the model (weights from ``init_model`` when given), split, and write
    ``split.npz`` and (a new run) ``config.toml`` into ``out``."""

    smiles = _subsample(smiles, cfg)
    data_hash = hash_smiles(smiles)
    if ckpt is not None and ckpt["metadata"].get("data_hash") != data_hash:
        raise TrainingError("--resume: the training data differ from the run being resumed")
    tokenizer = SelfiesTokenizer.from_dict(ckpt["tokenizer"]) if ckpt else None
    if init_model is not None:
        tokenizer = init_model.tokenizer
    with ctx.main_first():  # rank 0 builds the token cache; the others then read it
        data = tokenize_file(smiles, tokenizer=tokenizer, max_length=model_config.max_length or None,
                             progress=progress and ctx.is_main)
    progress = progress and ctx.is_main
    if data.n_failed:
        logger.warning("%d of %d training molecules could not be tokenized and are left out", data.n_failed, data.n_input)
    if len(data) < 2:
        raise ValueError("need at least 2 tokenizable molecules to train")
    model = MolVAE(data.tokenizer, model_config).to(ctx.device)
    usable = np.arange(len(data))
    values = None  # raw property values per data row (conditional models)
    if cfg.conditions:
        values = condition_values(out, data, smiles, cfg.conditions, data_hash, progress, write=ctx.is_main)
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
    val_idx, train_idx = _split(usable, cfg)
    run = Run(model, model.config, cfg, data, train_idx, val_idx, data_hash)
    if cfg.conditions:
        if ckpt is not None:
            model.conditions = cond_mod.spec_from_checkpoint(ckpt, model.config)
        elif model.conditions is None:
            model.conditions = cond_mod.ConditionSpec.fit(cfg.conditions, values[train_idx])
        spec = model.conditions
        run.cond_full = spec.vector(np.where(np.isfinite(values), values, 0.0))
        run.cond_std = run.cond_full[:, : len(spec.names)]
        logger.info("conditions %s: mean %s, std %s", ", ".join(spec.names),
                    ", ".join(f"{m:.3g}" for m in spec.mean), ", ".join(f"{s:.3g}" for s in spec.std))
    if ctx.is_main:

        with atomic_path(out / "split.npz") as tmp:
            np.savez(tmp, val=data.index[val_idx], train=data.index[train_idx])
        if ckpt is None:
            save_config(out / "config.toml", run.model_config, cfg)
    if cfg.n_prior_samples and ctx.is_main:

        run.train_set = training_set(smiles, data.index[train_idx])
    return run
