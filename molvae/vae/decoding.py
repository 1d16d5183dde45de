"""Decoding latent points into molecules: greedy and sampled token decoding, beam search, and
:func:`decode_z` (latent points -> a table of SMILES, SELFIES, validity, faithfulness, NLL).

``MolVAE.generate``, ``MolVAE.beam_search``, ``MolVAE.decode_z`` and ``MolVAE.decode`` call these.
Every decoder bans ``<pad>``, ``<bos>`` and ``<unk>``, makes the first token place an atom
and ends every row with ``<eos>``, so every row decodes to a molecule.
"""

from __future__ import annotations

import functools
import math

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from molvae.tokenizer import decode_strings
from molvae.utils.device import native_bf16
from molvae.utils.parallel import submit_chunks
from molvae.vae.conditions import append_condition, condition_tensor

if TYPE_CHECKING:  # pragma: no cover
    from molvae.vae.model import MolVAE

__all__ = ["METHODS", "generate", "beam_search", "decode_ids", "decode_z", "progress_batches"]

METHODS = ("greedy", "sample", "beam")
PRECISIONS = ("auto", "fp32", "bf16")
_SMILES_CACHE_SIZE = 200_000


def progress_batches(n: int, batch_size: int, desc: str, progress: bool):
    """Start offsets of the batches of ``n`` rows, with a progress bar when asked and worth it."""
    starts = range(0, n, batch_size)
    return tqdm(starts, desc=desc, unit="batch", disable=not progress or n <= batch_size, leave=False)


def _step_logits(model: MolVAE, current: torch.Tensor, zin: torch.Tensor, h: torch.Tensor):
    """One decoder step: float logits (B, V) with the never-generated tokens masked, and the new hidden state."""
    x = torch.cat([model.embedding(current).unsqueeze(1), zin], dim=-1)
    o, h = model.decoder(x, h)
    return model.output(o[:, 0]).float().masked_fill(model._banned, float("-inf")), h


def _autocast_on(device: torch.device) -> bool:
    try:
        return bool(torch.is_autocast_enabled(device.type))
    except TypeError:  # torch < 2.4: no device argument
        return bool(torch.is_autocast_cpu_enabled() if device.type == "cpu" else torch.is_autocast_enabled())


def _cpu_autocast_dtype() -> torch.dtype:
    try:
        return torch.get_autocast_dtype("cpu")
    except AttributeError:  # torch < 2.4
        return torch.get_autocast_cpu_dtype()


class _Stepper:
    """Steps of a one-layer GRU decoder with the input projections computed once per batch.

    The decoder's input at each step is ``[embedding(token), z]``: z's share of the input
    projection is the same at every step, and the embedding's share is one row of a
    (vocab, 3H) table, so a step costs one (B, H) x (H, 3H) product instead of two.  Same
    equations as ``torch.nn.GRU`` (gate order r, z, n) and, in float32, the same tokens
    (tested); greedy decoding of the shipped model was 16-23% faster in three A/Bs
    (``benchmarks/decoder_step.py``).

    ``bf16`` (sampling under CPU bfloat16 autocast): the two products of a step (hidden and
    output) run in bfloat16 on weights cast once, the table, the gates and the hidden state
    stay float32.  One step of 1,024 rows took 13.5 ms against 17.7 ms for ``torch.nn.GRU``
    under autocast (AVX-512-BF16 CPU, one thread; benchmarks/RESULTS.md, "Sampling speed").
    """

    def __init__(self, model: MolVAE, zin: torch.Tensor, bf16: bool = False):
        gru = model.decoder
        e = model.config.embedding_dim
        with torch.autocast(zin.device.type, enabled=False):
            w_ih = gru.weight_ih_l0
            self.table = model.embedding.weight @ w_ih[:, :e].T + gru.bias_ih_l0  # (V, 3H)
            self.gz = zin[:, 0].float() @ w_ih[:, e:].T  # (B, 3H)
        self.dtype = torch.bfloat16 if bf16 else torch.float32
        self.w_hh, self.b_hh = gru.weight_hh_l0.to(self.dtype), gru.bias_hh_l0
        self.w_out, self.b_out = model.output.weight.to(self.dtype), model.output.bias
        self.banned = model._banned
        self.hidden = gru.hidden_size
        self.device_type = zin.device.type

    def keep(self, live: torch.Tensor) -> None:
        self.gz = self.gz[live]

    def _product(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.dtype == torch.float32:
            return F.linear(x, w, b)
        return F.linear(x.to(self.dtype), w).float().add_(b)

    def __call__(self, current: torch.Tensor, h: torch.Tensor):
        k, hf = self.hidden, h[0].float()
        with torch.autocast(self.device_type, enabled=False):
            gi = self.table.index_select(0, current).add_(self.gz)
            gh = self._product(hf, self.w_hh, self.b_hh)
            ru = gi[:, : 2 * k].add_(gh[:, : 2 * k]).sigmoid_()
            n = torch.addcmul(gi[:, 2 * k :], ru[:, :k], gh[:, 2 * k :]).tanh_()
            hf = torch.lerp(n, hf, ru[:, k:])  # (1 - u) * n + u * h
            logits = self._product(hf, self.w_out, self.b_out)
        return logits.masked_fill_(self.banned, float("-inf")), hf.unsqueeze(0)


def _fast_steps(model: MolVAE, z: torch.Tensor) -> str | None:
    """Which :class:`_Stepper` applies: ``"fp32"`` for a plain one-layer float32 GRU without
    autocast, ``"bf16"`` for one under CPU bfloat16 autocast, None otherwise (``torch.nn.GRU``)."""
    gru = model.decoder
    plain = (isinstance(gru, torch.nn.GRU) and gru.num_layers == 1 and gru.bias and not gru.bidirectional
             and gru.weight_hh_l0.dtype == torch.float32 and z.dtype == torch.float32)
    if not plain:
        return None
    if not _autocast_on(z.device):
        return "fp32"
    if z.device.type == "cpu" and _cpu_autocast_dtype() == torch.bfloat16:
        return "bf16"
    return None


def _first_token_only_atoms(model: MolVAE, scores: torch.Tensor) -> torch.Tensor:
    return scores.masked_fill(~model._first_ok, float("-inf"))


@torch.no_grad()
def generate(
    model: MolVAE,
    z: torch.Tensor,
    method: str = "greedy",
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    max_length: int | None = None,
    condition: torch.Tensor | None = None,
    guidance: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode token ids from z (B, D).  Returns ids (B, T) with ``<bos>`` and ``<eos>``, and the
    NLL (B,) of the generated tokens under the model at temperature 1 (given the condition).

    ``method``: ``greedy`` or ``sample`` (with ``temperature``).  The first token always
    places an atom and every row ends with ``<eos>``, so every row decodes to a molecule.
    ``condition`` (B, 2k): a conditional model's condition vectors (None: unknown).
    ``guidance`` w (with a condition): classifier-free guidance (Ho and Salimans 2022), tokens
    chosen from ``l_c + w * (l_c - l_u)``, the logits given the condition and given nothing
    (the model was trained with conditions masked at random, so it knows both); w = 0 is plain
    conditional decoding, larger w follows the condition more closely.  It runs the decoder on
    both halves, so it costs twice as much.
    """
    if method not in ("greedy", "sample"):
        raise ValueError(f"unknown decoding method {method!r}; use greedy, sample or beam")
    if method == "sample" and temperature <= 0:
        raise ValueError("temperature must be > 0")
    if not math.isfinite(guidance) or guidance < 0:
        raise ValueError(f"guidance must be a finite number >= 0, got {guidance}")
    tok = model.tokenizer
    max_length = max_length or tok.max_length
    guided = guidance > 0 and condition is not None
    z_raw = z
    z = append_condition(model, z_raw, condition)  # the decoder takes z and c together
    if guided:  # second half: the same z with the condition unknown (all zeros)
        z = torch.cat([z, append_condition(model, z_raw, torch.zeros_like(condition))])
    b = z_raw.shape[0]
    h = model.init_hidden(z)
    current = torch.full((b,), tok.bos_id, dtype=torch.long, device=z.device)
    out = torch.full((b, max_length + 2), tok.pad_id, dtype=torch.long, device=z.device)
    out[:, 0] = tok.bos_id
    nll = torch.zeros(b, device=z.device)
    zin = z.unsqueeze(1)
    # rows still being generated; finished rows leave the batch (sequence lengths vary a
    # lot, so the last steps would otherwise run mostly padding)
    rows = torch.arange(b, device=z.device)
    mode = _fast_steps(model, zin)
    stepper = _Stepper(model, zin, bf16=mode == "bf16") if mode else None
    for t in range(max_length + 1):
        step_in = torch.cat([current, current]) if guided else current
        if stepper is not None:
            logits, h = stepper(step_in, h)
        else:
            logits, h = _step_logits(model, step_in, zin, h)
        if guided:
            logits, uncond = logits.chunk(2)
            # banned tokens are -inf in both halves: keep them -inf (not inf - inf = nan)
            choose = torch.where(torch.isfinite(logits), logits + guidance * (logits - uncond), logits)
        else:
            choose = logits
        if t == 0:
            logits = _first_token_only_atoms(model, logits)
            choose = _first_token_only_atoms(model, choose)
        if t == max_length:  # out of room: end here
            nxt = torch.full((len(rows),), tok.eos_id, dtype=torch.long, device=z.device)
        elif method == "greedy":
            nxt = choose.argmax(dim=-1)
        else:
            probs = F.softmax(choose / temperature, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        logp = F.log_softmax(logits, dim=-1).gather(1, nxt.unsqueeze(1)).squeeze(1)
        nll[rows] += -logp.nan_to_num(neginf=0.0)
        out[rows, t + 1] = nxt
        live = nxt != tok.eos_id
        if not bool(live.any()):
            break
        if not bool(live.all()):
            both = torch.cat([live, live]) if guided else live
            rows, nxt, zin, h = rows[live], nxt[live], zin[both], h[:, both]
            if stepper is not None:
                stepper.keep(both)
        current = nxt
    return out, nll


@torch.no_grad()
def beam_search(
    model: MolVAE, z: torch.Tensor, beam_width: int = 5, max_length: int | None = None,
    condition: torch.Tensor | None = None,
) -> torch.Tensor:
    """Most likely token sequence per z by beam search: (B, D) -> ids (B, T); ``condition`` as in :func:`generate`."""
    tok = model.tokenizer
    max_length = max_length or tok.max_length
    z = append_condition(model, z, condition)
    b, k, v = z.shape[0], beam_width, model.config.vocab_size
    zk = z.repeat_interleave(k, dim=0).unsqueeze(1)  # (B*K, 1, D)
    h = model.init_hidden(zk[:, 0])
    scores = torch.full((b, k), float("-inf"), device=z.device)
    scores[:, 0] = 0.0
    seqs = torch.full((b * k, max_length + 2), tok.pad_id, dtype=torch.long, device=z.device)
    seqs[:, 0] = tok.bos_id
    current = seqs[:, 0].clone()
    done = torch.zeros(b * k, dtype=torch.bool, device=z.device)
    for t in range(max_length + 1):
        logits, h = _step_logits(model, current, zk, h)
        logp = F.log_softmax(logits, dim=-1)
        if t == 0:
            logp = _first_token_only_atoms(model, logp)
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
        src = (torch.arange(b, device=z.device).unsqueeze(1) * k + flat // v).view(-1)
        token = (flat % v).view(-1)
        seqs, h, done = seqs[src], h[:, src], done[src]
        seqs[:, t + 1] = token
        done = done | (token == tok.eos_id)
        current = token
        if bool(done.all()):
            break
    return seqs.view(b, k, -1)[:, 0]


def _start_decoding(model: MolVAE, ids: np.ndarray, check_faithful: bool = True):
    """Hand the id rows' new SELFIES to the worker pool; returns what :func:`_finish_decoding` needs.
    ``check_faithful=False``: strings new to the cache are decoded without the faithfulness check."""
    selfies = model.tokenizer.decode_selfies(ids)
    # SELFIES -> canonical SMILES is pure and costs about as much as the GRU step per molecule;
    # nearby latent points (optimization, neighbours) decode to the same strings often
    cache = model.__dict__.setdefault("_smiles_cache", {})
    if len(cache) > _SMILES_CACHE_SIZE:
        cache.clear()
    # a string cached without its check is decoded again when the check is wanted
    todo = list(dict.fromkeys(s for s in selfies if s not in cache or (check_faithful and cache[s][1] is None)))
    work = decode_strings if check_faithful else functools.partial(decode_strings, faithful=False)
    # large batches (sampling) go to forked worker processes (molvae.utils.parallel) while the
    # calling process generates the next batch
    return selfies, todo, submit_chunks(work, todo, min_chunk=512)


def _finish_decoding(model: MolVAE, selfies: list[str], todo: list[str], results) -> tuple[list, list, list]:
    cache = model.__dict__.setdefault("_smiles_cache", {})
    for s, hit in zip(todo, results()):
        cache[s] = hit
    hits = [cache[s] for s in selfies]
    return selfies, [h[0] for h in hits], [h[1] for h in hits]


def decode_ids(model: MolVAE, ids: np.ndarray) -> tuple[list[str], list[str | None], list[bool]]:
    """SELFIES, canonical SMILES (None: no molecule) and faithfulness of each id row."""
    return _finish_decoding(model, *_start_decoding(model, ids))


def _as_latent(model: MolVAE, z: np.ndarray | torch.Tensor) -> torch.Tensor:
    z = torch.as_tensor(np.asarray(z, dtype=np.float32)) if not torch.is_tensor(z) else z.float()
    if z.ndim == 1:
        z = z.unsqueeze(0)
    if z.shape[1] != model.latent_dim:
        raise ValueError(f"z has {z.shape[1]} dimensions, the model {model.latent_dim}")
    if not torch.isfinite(z).all():
        raise ValueError("z contains NaN or inf (a molecule that failed to encode?)")
    return z


def _empty_frame() -> pd.DataFrame:
    return pd.DataFrame({"smiles": pd.Series(dtype=str), "selfies": pd.Series(dtype=str), "valid": pd.Series(dtype=bool),
                         "faithful": pd.Series(dtype=bool), "nll": pd.Series(dtype=float)})


def _frame(selfies: list[str], smiles: list[str | None], faithful: list[bool], nll: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({
        "smiles": [s or "" for s in smiles],
        "selfies": selfies,
        "valid": [s is not None for s in smiles],
        "faithful": faithful,
        "nll": nll.astype(float),
    })


@torch.no_grad()
def decode_z(
    model: MolVAE,
    z: np.ndarray | torch.Tensor,
    method: str = "greedy",
    temperature: float = 1.0,
    beam_width: int = 5,
    seed: int | None = None,
    batch_size: int = 1024,
    progress: bool = False,
    precision: str = "auto",
    condition=None,
    guidance: float = 0.0,
    check_faithful: bool = True,
) -> pd.DataFrame:
    """Decode latent points (N, D) -> DataFrame (smiles, selfies, valid, faithful, nll).

    ``method``: ``greedy``, ``sample`` (``temperature``, ``seed``) or ``beam`` (``beam_width``;
    nll is NaN).  ``condition`` (conditional models): a mapping ``{name: value or N values}``
    or condition vectors (N, 2k) (:mod:`molvae.vae.conditions`); None or names left out: unknown.
    ``guidance``: classifier-free guidance weight for a condition (:func:`generate`; not with beam).

    ``faithful``: the SELFIES string is the tokenizer's own spelling of its molecule
    (:func:`molvae.tokenizer.is_faithful`), i.e. SELFIES did not repair it;
    ``check_faithful=False`` skips that check (the column is then None where it was not
    computed before), for callers that need only the molecules.
    ``precision``: ``auto`` runs ``method="sample"`` under bfloat16 autocast where the
    device does bf16 natively (about 3x faster on an AVX-512-BF16 CPU) and everything else
    in float32; ``fp32`` or ``bf16`` force one.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use auto, fp32 or bf16")
    bf16 = precision == "bf16" or (precision == "auto" and method == "sample" and native_bf16(model.device))
    z = _as_latent(model, z)
    cond = condition_tensor(model, condition, len(z))
    if guidance and method == "beam":
        raise ValueError("guidance works with method='greedy' or 'sample', not beam search")
    gen = None
    if seed is not None:
        gen = torch.Generator(device=model.device)
        gen.manual_seed(int(seed))
    was_training = model.training
    model.eval()
    frames = []
    pending = None  # the previous batch: its strings are being decoded while this one is generated
    try:
        for s in progress_batches(len(z), batch_size, "decode", progress):
            zb = z[s : s + batch_size].to(model.device)
            cb = None if cond is None else cond[s : s + batch_size]
            if method == "beam":
                ids = beam_search(model, zb, beam_width, condition=cb)
                nll = torch.full((len(zb),), float("nan"))
            else:
                with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=bf16):
                    ids, nll = generate(model, zb, method=method, temperature=temperature, generator=gen, condition=cb,
                                        guidance=guidance)
            started = _start_decoding(model, ids.cpu().numpy(), check_faithful)
            if pending is not None:
                frames.append(_frame(*_finish_decoding(model, *pending[0]), pending[1]))
            pending = (started, nll.cpu().numpy())
        if pending is not None:
            frames.append(_frame(*_finish_decoding(model, *pending[0]), pending[1]))
    finally:
        model.train(was_training)
    if not frames:
        return _empty_frame()
    return pd.concat(frames, ignore_index=True)
