"""Plain helpers shared by the tests: tiny model sizes and training settings, ZINC molecules,
teacher-forced log-probabilities, the benchmark scripts as modules.  Fixtures live in ``conftest.py``, not here.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from molvae.config import ModelConfig, TrainConfig
from molvae.data import load_dataset

TINY_MODEL = ModelConfig(
    embedding_dim=16, encoder_hidden_dim=32, latent_dim=8, decoder_hidden_dim=64, decoder_layers=1
)

# the same sizes as a TOML [model] section, for tests that train through a config file
TINY_MODEL_TOML = "[model]\n" + "".join(
    f"{k} = {getattr(TINY_MODEL, k)}\n"
    for k in ("embedding_dim", "encoder_hidden_dim", "latent_dim", "decoder_hidden_dim", "decoder_layers")
)


def tiny_train_config(**overrides) -> TrainConfig:
    """Seconds-long training: 2 epochs of batch 16, small validation, single thread, no progress."""
    base = dict(
        epochs=2,
        batch_size=16,
        n_prior_samples=20,
        max_val=32,
        val_fraction=0.1,
        log_every=5,
        num_threads=1,
        kl_warmup_steps=10,
        checkpoint_every=1000,
        early_stopping_patience=0,
        seed=0,
        device="cpu",
    )
    base.update(overrides)
    return TrainConfig(**base)


@functools.lru_cache(maxsize=1)
def _zinc_test() -> tuple[str, ...]:
    return tuple(load_dataset("zinc", "test"))


def zinc(n: int, start: int = 0) -> list[str]:
    """``n`` molecules of the bundled ZINC test split (clean, RDKit-parsable)."""
    return list(_zinc_test()[start : start + n])


def masked_log_probs(model, z: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """Teacher-forced next-token log-probabilities under the same masks the decoders use
    (<pad>/<bos>/<unk> never generated; the first token places an atom): (B, T, V)."""
    logits = model.decode_logits(z, inputs).float().masked_fill(model._banned, float("-inf"))
    logits[:, 0] = logits[:, 0].masked_fill(~model._first_ok, float("-inf"))
    return F.log_softmax(logits, dim=-1)


@torch.no_grad()
def sequence_log_prob(model, z: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Log-likelihood (B,) of generated id rows (``<bos> ... <eos> <pad>...``) given z, by teacher
    forcing; every token up to and including ``<eos>`` counts, padding after it does not."""
    pad = model.tokenizer.pad_id
    inputs, targets = ids[:, :-1], ids[:, 1:]
    lp = masked_log_probs(model, z, inputs).gather(2, targets.unsqueeze(2)).squeeze(2)
    return torch.where(targets != pad, lp, torch.zeros_like(lp)).sum(dim=1)


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str):
    """``benchmarks/<name>.py`` imported as a module (with ``benchmarks/`` on the path while it loads)."""
    path = BENCHMARKS / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_bench", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module
