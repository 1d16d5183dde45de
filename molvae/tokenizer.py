"""SELFIES tokenizer: SMILES <-> padded integer arrays.

Sequences are laid out as ``<bos> t_1 ... t_n <eos> <pad> ...`` with ``n <= max_length``;
``lengths`` counts ``n + 2`` (both markers).  Every SELFIES string decodes to a valid
molecule, so any id sequence whose tokens include one atom decodes to a valid SMILES.

>>> tok = SelfiesTokenizer.fit(["CCO", "c1ccccc1O"])
>>> batch = tok.encode(["CCO"])
>>> tok.decode(batch.ids)
['CCO']
"""

from __future__ import annotations

import hashlib
import json
import logging
import functools
import os
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import selfies as sf

from molvae.chem import MAX_SMILES_LENGTH, canonical, mol_smiles, standardize, to_mol
from molvae.utils.io import atomic_write
from molvae.utils.parallel import chunked_map

__all__ = ["SelfiesTokenizer", "TokenizationError", "EncodedBatch", "SPECIAL_TOKENS", "is_faithful", "decode_strings",
           "selfies_to_mol", "element_sequence"]

logger = logging.getLogger(__name__)

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
TOKENIZER_FORMAT = "molvae-selfies-tokenizer"
TOKENIZER_VERSION = 1
# Below this many molecules a batch is tokenized in-process: handing chunks to workers costs more.
PARALLEL_THRESHOLD = 8_000
_CHUNK = 4_000


class TokenizationError(ValueError):
    """A molecule that cannot be turned into tokens; carries the SMILES and the reason."""

    def __init__(self, smiles: object, reason: str):
        super().__init__(f"cannot tokenize {smiles!r}: {reason}")
        self.smiles = smiles
        self.reason = reason


def _is_structural(token: str) -> bool:
    """Branch and ring tokens (and specials) place no atom."""
    return token in SPECIAL_TOKENS or "Branch" in token or "Ring" in token or token == "[nop]"


def smiles_to_tokens(smiles: object, standardize_input: bool = True) -> list[str]:
    """SELFIES tokens of one molecule, after the molecule policy of :func:`molvae.chem.standardize`.

    Raises :class:`TokenizationError` with the reason on failure.
    """
    if not isinstance(smiles, str) or not smiles.strip():
        raise TokenizationError(smiles, "empty or not a string")
    if len(smiles) > MAX_SMILES_LENGTH:
        raise TokenizationError(smiles[:60] + "...", f"too long: {len(smiles)} characters > {MAX_SMILES_LENGTH}")
    smi = standardize(smiles) if standardize_input else canonical(smiles)
    if smi is None:
        raise TokenizationError(smiles, "invalid SMILES (RDKit cannot parse it)")
    try:
        selfies = sf.encoder(smi, strict=True)
    except sf.EncoderError as err:
        raise TokenizationError(smiles, f"SELFIES encoder error: {str(err).splitlines()[0]}") from None
    except Exception as err:  # selfies raises plain errors on some exotic inputs
        raise TokenizationError(smiles, f"SELFIES encoder error: {err}") from None
    tokens = list(sf.split_selfies(selfies))
    if not tokens:
        raise TokenizationError(smiles, "empty SELFIES")
    # SELFIES kekulizes on the way in; for a few exotic aromatic systems (charged aromatic
    # carbons, for one) its Kekule structure decodes to another molecule.  Such a molecule
    # cannot be represented, so it is refused rather than silently replaced.
    try:
        back = canonical(sf.decoder(selfies))
    except Exception:  # selfies' decoder, like its encoder, raises plain errors on exotic input
        back = None
    if back != smi:
        raise TokenizationError(smiles, f"SELFIES does not round-trip this molecule (decodes to {back})")
    return tokens


def _tokenize_chunk(chunk: list, standardize_input: bool = True) -> list[tuple[list[str] | None, str | None]]:
    out = []
    for s in chunk:
        try:
            # interned: a few dozen distinct token strings shared by millions of lists (and
            # pickled once per chunk), instead of one string object per token
            out.append(([sys.intern(t) for t in smiles_to_tokens(s, standardize_input)], None))
        except TokenizationError as err:
            out.append((None, err.reason))
    return out


def tokenize_many(
    smiles: Sequence[object],
    n_jobs: int | None = None,
    progress: bool = True,
    standardize_input: bool = True,
) -> list[tuple[list[str] | None, str | None]]:
    """``(tokens, None)`` or ``(None, reason)`` for each input, in order; never raises per molecule.

    Inputs of ``PARALLEL_THRESHOLD`` molecules or more are spread over ``n_jobs`` worker
    processes (default: all cores; the package's forked pool, which works from plain scripts).
    """
    smiles = list(smiles)
    if len(smiles) < PARALLEL_THRESHOLD:
        n_jobs = 1
    work = functools.partial(_tokenize_chunk, standardize_input=standardize_input)
    return chunked_map(work, smiles, n_jobs=n_jobs, min_chunk=_CHUNK // 4, max_chunk=_CHUNK,
                       progress=progress, desc="tokenize")


def failure_frame(failures: Sequence[tuple[int, object, str]]) -> pd.DataFrame:
    """(index, smiles, reason) rows as a DataFrame; the input column stays Python objects, so
    that any string a user passed (a lone surrogate too) survives pandas' Arrow-backed strings."""
    index, smiles, reason = zip(*failures) if failures else ((), (), ())
    return pd.DataFrame({
        "index": pd.Series(index, dtype=np.int64),
        "smiles": pd.Series(smiles, dtype=object),
        "reason": pd.Series(reason, dtype=object),
    })


@dataclass
class EncodedBatch:
    """Result of :meth:`SelfiesTokenizer.encode`.

    ``ids``: (N_ok, max_length + 2) token ids; ``lengths``: (N_ok,) tokens including both
    markers; ``index``: (N_ok,) positions in the input of the rows kept; ``failures``: a
    DataFrame (index, smiles, reason) of the inputs that could not be encoded.
    """

    ids: np.ndarray
    lengths: np.ndarray
    index: np.ndarray
    failures: pd.DataFrame = field(default_factory=lambda: failure_frame([]))

    def __len__(self) -> int:
        return len(self.ids)


class SelfiesTokenizer:
    """SELFIES vocabulary with ``<pad>=0, <bos>=1, <eos>=2, <unk>=3`` then the sorted tokens."""

    def __init__(self, tokens: Iterable[str], max_length: int, standardize_input: bool = True):
        regular = sorted(set(tokens) - set(SPECIAL_TOKENS))
        if not regular:
            raise ValueError("a tokenizer needs at least one SELFIES token")
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        self.itos: list[str] = list(SPECIAL_TOKENS) + regular
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}
        self.max_length = int(max_length)
        self.standardize_input = bool(standardize_input)

    # ----------------------------------------------------------------- construction
    @classmethod
    def fit(
        cls,
        smiles: Sequence[object],
        max_length: int | None = None,
        n_jobs: int | None = None,
        progress: bool = True,
        standardize_input: bool = True,
    ) -> SelfiesTokenizer:
        """Vocabulary of every token seen in ``smiles`` (sorted, so fitting twice gives the same).

        ``max_length`` defaults to the longest molecule seen; molecules that fail to
        tokenize are skipped and counted in the log.
        """
        results = tokenize_many(smiles, n_jobs=n_jobs, progress=progress, standardize_input=standardize_input)
        return cls.fit_tokens([t for t, _ in results], max_length, standardize_input, n_failed=None)

    @classmethod
    def fit_tokens(
        cls,
        token_lists: Iterable[list[str] | None],
        max_length: int | None = None,
        standardize_input: bool = True,
        n_failed: int | None = None,
    ) -> SelfiesTokenizer:
        """Fit from already tokenized molecules (``None`` entries are failures, skipped)."""
        vocab: set[str] = set()
        longest, bad = 0, 0
        for tokens in token_lists:
            if tokens is None:
                bad += 1
                continue
            if max_length is not None and len(tokens) > max_length:
                continue
            vocab.update(tokens)
            longest = max(longest, len(tokens))
        if bad:
            logger.info("fit: skipped %d molecules that could not be tokenized", bad)
        if not vocab:
            raise ValueError("no molecule could be tokenized: cannot fit a vocabulary")
        return cls(vocab, max_length if max_length is not None else longest, standardize_input)

    def to_dict(self) -> dict:
        """Plain JSON types only (stored inside checkpoints)."""
        return {
            "format": TOKENIZER_FORMAT,
            "version": TOKENIZER_VERSION,
            "tokens": self.itos[len(SPECIAL_TOKENS) :],
            "max_length": self.max_length,
            "standardize_input": self.standardize_input,
        }

    @classmethod
    def from_dict(cls, data: dict) -> SelfiesTokenizer:
        if not isinstance(data, dict) or data.get("format") != TOKENIZER_FORMAT:
            raise ValueError("not a molvae tokenizer description (missing or wrong 'format')")
        if int(data.get("version", -1)) > TOKENIZER_VERSION:
            raise ValueError(
                f"tokenizer format version {data.get('version')} is newer than this molvae supports "
                f"({TOKENIZER_VERSION}); upgrade molvae"
            )
        return cls(data["tokens"], int(data["max_length"]), bool(data.get("standardize_input", True)))

    def save(self, path: str | os.PathLike) -> None:
        with atomic_write(path) as fh:
            json.dump(self.to_dict(), fh, indent=1)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SelfiesTokenizer:
        with open(path) as fh:
            return cls.from_dict(json.load(fh))

    def fingerprint(self) -> str:
        """Short hash of the vocabulary and settings (keys token caches)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SelfiesTokenizer) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"SelfiesTokenizer(vocab_size={self.vocab_size}, max_length={self.max_length})"

    # ----------------------------------------------------------------- properties
    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    @property
    def seq_len(self) -> int:
        """Width of an encoded array: ``max_length`` plus ``<bos>`` and ``<eos>``."""
        return self.max_length + 2

    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3

    def atom_token_mask(self) -> np.ndarray:
        """(vocab_size,) bool: tokens that place an atom (the first generated token must be one)."""
        return np.array([not _is_structural(t) for t in self.itos])

    # ----------------------------------------------------------------- encoding
    def tokens_to_ids(self, tokens: list[str], smiles: object = None) -> np.ndarray:
        """Ids ``<bos> ... <eos> <pad>...`` of a token list; raises :class:`TokenizationError`."""
        unknown = sorted({t for t in tokens if t not in self.stoi})
        if unknown:
            raise TokenizationError(smiles, f"tokens outside the vocabulary: {' '.join(unknown)}")
        if len(tokens) > self.max_length:
            raise TokenizationError(smiles, f"too long: {len(tokens)} tokens > max_length {self.max_length}")
        row = np.full(self.seq_len, self.pad_id, dtype=np.int64)
        row[0] = self.bos_id
        row[1 : len(tokens) + 1] = [self.stoi[t] for t in tokens]
        row[len(tokens) + 1] = self.eos_id
        return row

    def encode_one(self, smiles: str) -> np.ndarray:
        """(seq_len,) ids of one molecule; raises :class:`TokenizationError` with the reason."""
        return self.tokens_to_ids(smiles_to_tokens(smiles, self.standardize_input), smiles)

    def encode(
        self, smiles: Sequence[object] | str, n_jobs: int | None = None, progress: bool = False
    ) -> EncodedBatch:
        """Encode a batch; molecules that fail are reported in ``failures`` with the reason."""
        if isinstance(smiles, str):
            smiles = [smiles]
        smiles = list(smiles)
        results = tokenize_many(smiles, n_jobs=n_jobs, progress=progress, standardize_input=self.standardize_input)
        return self.encode_tokens([t for t, _ in results], smiles, [r for _, r in results])

    def encode_tokens(
        self, token_lists: Sequence[list[str] | None], smiles: Sequence[object], reasons: Sequence[str | None]
    ) -> EncodedBatch:
        """Map tokenized molecules to ids; ``None`` entries are failures with ``reasons[i]``."""
        ids = np.full((len(token_lists), self.seq_len), self.pad_id, dtype=np.int64)
        lengths = np.zeros(len(token_lists), dtype=np.int64)
        keep = np.zeros(len(token_lists), dtype=bool)
        failures = []
        for i, tokens in enumerate(token_lists):
            if tokens is None:
                failures.append((i, smiles[i], reasons[i]))
                continue
            try:
                ids[i] = self.tokens_to_ids(tokens, smiles[i])
            except TokenizationError as err:
                failures.append((i, smiles[i], err.reason))
                continue
            lengths[i] = len(tokens) + 2
            keep[i] = True
        if failures:
            counts = Counter(r.split(":")[0] for _, _, r in failures)
            logger.info("encode: %d of %d molecules rejected (%s)", len(failures), len(token_lists), dict(counts))
        index = np.flatnonzero(keep)
        return EncodedBatch(
            ids[keep], lengths[keep], index, failure_frame(failures)
        )

    # ----------------------------------------------------------------- decoding
    def ids_to_selfies(self, ids: Sequence[int] | np.ndarray) -> str:
        """SELFIES string of one id row: stops at ``<eos>``, skips ``<bos>``/``<pad>``/``<unk>``."""
        out = []
        for i in np.asarray(ids).tolist():
            if i == self.eos_id:
                break
            if 0 <= i < len(self.itos) and i >= len(SPECIAL_TOKENS):
                out.append(self.itos[i])
        return "".join(out)

    def decode_selfies(self, ids: np.ndarray) -> list[str]:
        """(N, T) ids -> N SELFIES strings."""
        ids = np.atleast_2d(np.asarray(ids))
        return [self.ids_to_selfies(row) for row in ids]

    def decode(self, ids: np.ndarray) -> list[str | None]:
        """(N, T) ids -> N canonical SMILES; ``None`` only for a row that places no atom."""
        return [selfies_to_smiles(s) for s in self.decode_selfies(ids)]


def _sf_decode(selfies: str) -> str | None:
    """``sf.decoder``'s SMILES (in the string's atom order), or ``None`` where it fails."""
    try:
        return sf.decoder(selfies) or None
    except Exception:
        return None


def _spells(selfies: str, smiles: str | None, strict: bool) -> bool:
    """Whether ``selfies.encoder(smiles)`` is ``selfies`` (False where the encoder refuses)."""
    if not smiles:
        return False
    try:
        return sf.encoder(smiles, strict=strict) == selfies
    except Exception:  # a molecule the SELFIES encoder refuses cannot be the training form
        return False


def selfies_to_mol(selfies: str):
    """The sanitized RDKit molecule a SELFIES string decodes to, or ``None``: one parse, for
    callers that need both the molecule and its canonical SMILES (:func:`molvae.chem.mol_smiles`)."""
    smi = _sf_decode(selfies)
    return to_mol(smi) if smi else None


def selfies_to_smiles(selfies: str) -> str | None:
    """Canonical SMILES of a SELFIES string, or ``None`` when it decodes to no molecule."""
    return mol_smiles(selfies_to_mol(selfies))


def is_faithful(selfies: str, smiles: str | None) -> bool:
    """Whether a generated SELFIES string is the one the tokenizer itself gives its molecule.

    ``smiles`` is the canonical SMILES that ``selfies`` decodes to (:func:`selfies_to_smiles`).
    SELFIES decodes every string to some molecule: a branch or ring whose size token is off,
    or a bond past an atom's remaining valence, is silently repaired into another, often
    strange molecule.  A string equal to ``selfies.encoder`` of its own molecule's canonical
    SMILES, the form every training string has, was not repaired: the decoder spelled a
    molecule exactly as it was taught to.  Strings that a repair produced, truncated strings
    and strings in another atom order are all rejected (measured on the shipped model: the
    accepted prior samples score MOSES FCD 1.99 against 5.85 for all of them).

    >>> is_faithful("[C][C][O]", "CCO")
    True
    >>> is_faithful("[C][C][=O][=C]", "CC=O")  # O has no valence left: [=C] was dropped
    False
    >>> is_faithful("[O][C][C]", "CCO")  # the same molecule, spelled in another atom order
    False
    """
    return _spells(selfies, smiles, strict=True)


# the atoms of a SMILES string in the order written: bracket atoms and the organic subset
_SMILES_ATOM = re.compile(r"\[[^\]]*\]|Br|Cl|[BCNOPSFIbcnops]")
_BRACKET_ELEMENT = re.compile(r"\[\d*([A-Z][a-z]?|se|as|te|[a-z])")


def element_sequence(smiles: str) -> list[str]:
    """The element of each atom of ``smiles`` in the order the string writes them, upper case
    (aromatic and Kekule spellings alike): ``"c1ccncc1Cl"`` -> ``['C', 'C', 'C', 'N', 'C', 'C', 'CL']``."""
    out = []
    for m in _SMILES_ATOM.finditer(smiles):
        tok = m.group(0)
        if tok[0] == "[":
            e = _BRACKET_ELEMENT.match(tok)
            tok = e.group(1) if e else tok
        out.append(tok.upper())
    return out


def _decoded_faithful(selfies: str, decoded: str | None, smiles: str | None) -> bool:
    """:func:`is_faithful` for a string ``selfies`` that ``sf.decoder`` turned into ``decoded``,
    whose canonical SMILES is ``smiles``; the same answer, for less work.

    The SELFIES decoder writes atoms in the order of the string's atom tokens, and the
    encoder in the order of the SMILES it is given, so a faithful string decodes to its
    atoms in canonical order.  Comparing the two atom sequences costs about a fifth of
    re-encoding, and rejects about 80% of the unfaithful prior samples of the shipped
    models before the encoder runs (benchmarks/RESULTS.md, "Sampling speed").  The encoder
    then runs without ``strict``: its valence check cannot fail here, because the molecule
    came out of the SELFIES decoder, which only builds molecules within those valences.
    """
    if not smiles or not decoded or element_sequence(decoded) != element_sequence(smiles):
        return False
    return _spells(selfies, smiles, strict=False)


def decode_strings(selfies: list[str], faithful: bool = True) -> list[tuple[str | None, bool | None]]:
    """``(canonical SMILES or None, faithful)`` of each SELFIES string (see :func:`is_faithful`);
    ``faithful=False`` leaves the check out (``None`` in its place) for callers that only need the
    molecules, such as the optimizer's greedy decoding (the check is about a third of the string work)."""
    out = []
    for s in selfies:
        decoded = _sf_decode(s)
        smi = canonical(decoded) if decoded else None
        out.append((smi, _decoded_faithful(s, decoded, smi) if faithful else None))
    return out
