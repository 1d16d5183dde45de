"""Hostile inputs: what molvae promises for input it was never meant to see.

Every case ends one of three ways: a clear error (an exception of the documented type, or
exit code 2 and a one-line ``molvae CMD: error: ...`` on stderr), a counted skip (the row or
molecule is dropped, counted and given a reason), or the run continues unharmed.  A traceback,
a silent loss of data, a crash of the interpreter or code run from a file are bugs; such
cases are written as ``xfail(strict=True)`` with the reason, until the library is fixed.
The table of cases and outcomes is ``docs/robustness.md``.

Training interruptions, full disks and numeric faults are in ``tests/robustness/test_faults.py``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import gzip
import io
import json
import logging
import multiprocessing as mp
import os
import pickle
import re
import resource
import struct
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import TINY_MODEL, tiny_train_config, zinc  # noqa: F401
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rdkit import Chem

from molvae.chem import canonical, quiet_rdkit, standardize, to_mol
from molvae.cli.main import main
from molvae.data import load_dataset, read_smiles, tokenize_file
from molvae.properties import compute
from molvae.tokenizer import SelfiesTokenizer, TokenizationError, smiles_to_tokens
from molvae.training.loop import train
from molvae.vae.checkpoint import CheckpointError, load_checkpoint
from molvae.vae.model import MolVAE

PROPS = ["qed", "logp", "sa", "penalized_logp", "mw"]

# database=None: hypothesis keeps no example database in the working tree
FAST = settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
THOROUGH = settings(FAST, max_examples=150)


# ============================================================================ shared helpers
@pytest.fixture(scope="module")
def zinc_tok() -> SelfiesTokenizer:
    """A vocabulary of 300 ZINC molecules plus a charged amine, a carboxylate and alanine."""
    extra = ["C[NH3+]", "CC(=O)[O-]", "C[C@H](N)C(=O)O"]
    return SelfiesTokenizer.fit(zinc(300) + extra, progress=False)


@pytest.fixture(scope="module")
def tiny_model(zinc_tok) -> MolVAE:
    torch.manual_seed(0)
    return MolVAE(zinc_tok, TINY_MODEL).eval()


@pytest.fixture(scope="module")
def ckpt_file(tiny_model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    tiny_model.save(path)
    return path


def _cli(argv: list[str]) -> tuple[int, str, str]:
    """Run ``molvae ARGV`` in-process: (exit code, stdout, stderr).  An exception escaping
    ``main`` is a traceback for the user and fails the calling test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _tokenize_cli(path: Path, *extra: str) -> tuple[int, str, str]:
    return _cli(["tokenize", str(path), "-q", "--jobs", "1", *extra])


def _assert_clear_error(code: int, err: str, command: str, path: Path | None = None) -> None:
    assert code == 2, f"exit code {code}, stderr {err!r}"
    assert err.startswith(f"molvae {command}: error:"), err
    assert "Traceback" not in err
    if path is not None:
        assert str(path) in err, f"the message does not name the file: {err!r}"


def _counts(stdout: str) -> tuple[int, int]:
    """(molecules read, invalid rows dropped) from ``molvae tokenize``'s report."""
    m = re.search(r"molecules read: ([\d,]+); invalid rows dropped: ([\d,]+)", stdout)
    assert m, stdout
    return int(m[1].replace(",", "")), int(m[2].replace(",", ""))


def _in_forked_child(fn, *args, timeout: float = 120.0):
    """Run ``fn(*args)`` in a forked child: (exit code, ("ok", result) | ("raised", repr) | None).

    A crash of the interpreter (segfault: exit code -11) only kills the child."""
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)

    def target():
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file for an expected crash
        try:
            send.send(("ok", fn(*args)))
        except BaseException as err:  # noqa: BLE001  (reported to the parent)
            send.send(("raised", repr(err)))

    proc = ctx.Process(target=target)
    proc.start()
    send.close()  # the child holds the only writer: a dead child reads as EOF here
    result = None
    try:
        if recv.poll(timeout):
            result = recv.recv()
    except EOFError:
        result = None
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        proc.join()
    return proc.exitcode, result


# ============================================================================ tokenizer
_CHIRAL_TAGS = [Chem.ChiralType.CHI_UNSPECIFIED, Chem.ChiralType.CHI_TETRAHEDRAL_CW, Chem.ChiralType.CHI_TETRAHEDRAL_CCW]
_EXTRA_FRAGMENTS = ["[Na+]", "[Cl-]", "O", "[K+]", "CC(=O)[O-]", "[Fe+2]", "Cl[Pt]Cl", "[2H]O[2H]", "C[N+](C)(C)C", "[Br-]"]
_ELEMENTS = [5, 6, 7, 8, 9, 14, 15, 16, 17, 34, 35, 53]
_BOND_TYPES = [Chem.BondType.SINGLE, Chem.BondType.DOUBLE, Chem.BondType.TRIPLE]


@functools.lru_cache(maxsize=1)
def _zinc_pool() -> tuple[str, ...]:
    return tuple(load_dataset("zinc", "valid", limit=500))


def _edit(mol: Chem.Mol, kind: str, atom_idx: int, value: int) -> Chem.Mol | None:
    """One random edit of ``mol``, or None when RDKit refuses the result."""
    cand = Chem.RWMol(mol)
    atom = cand.GetAtomWithIdx(atom_idx % cand.GetNumAtoms())
    if kind == "charge":
        atom.SetFormalCharge(value % 5 - 2)
    elif kind == "isotope":
        atom.SetIsotope([2, 13, 15, 18][value % 4])
    elif kind == "chirality":
        atom.SetChiralTag(_CHIRAL_TAGS[value % 3])
    elif kind == "element":
        atom.SetAtomicNum(_ELEMENTS[value % len(_ELEMENTS)])
    elif kind == "hydrogens":
        atom.SetNumExplicitHs(value % 3)
        atom.SetNoImplicit(bool(value % 2))
    elif kind == "bond" and cand.GetNumBonds():
        cand.GetBondWithIdx(value % cand.GetNumBonds()).SetBondType(_BOND_TYPES[value % 3])
    elif kind == "fragment":
        frag = Chem.MolFromSmiles(_EXTRA_FRAGMENTS[value % len(_EXTRA_FRAGMENTS)])
        cand = Chem.RWMol(Chem.CombineMols(cand, frag))
    try:
        with quiet_rdkit():
            new = cand.GetMol()
            Chem.SanitizeMol(new)
            if Chem.MolFromSmiles(Chem.MolToSmiles(new)) is None:
                return None
    except Exception:  # an edit RDKit refuses is simply not made
        return None
    return new


@st.composite
def rdkit_smiles(draw) -> str:
    """A ZINC molecule after 0-5 random edits (charge, isotope, chirality, element, explicit
    hydrogens, bond order, an extra salt / metal / water fragment) that RDKit still accepts,
    spelled canonically or as a seeded random SMILES."""
    mol = Chem.MolFromSmiles(draw(st.sampled_from(_zinc_pool())))
    kinds = st.sampled_from(["charge", "isotope", "chirality", "element", "hydrogens", "bond", "fragment"])
    for _ in range(draw(st.integers(0, 5))):
        new = _edit(mol, draw(kinds), draw(st.integers(0, 10_000)), draw(st.integers(0, 10_000)))
        if new is not None:
            mol = new
    seed = draw(st.none() | st.integers(0, 2**31 - 1))
    if seed is None:
        return Chem.MolToSmiles(mol)
    return Chem.MolToRandomSmilesVect(mol, 1, randomSeed=seed)[0]


@THOROUGH
@given(rdkit_smiles())
@example("CC(=O)[O-].[Na+]")
@example("[2H]C([2H])([2H])O")
@example("C[C@H](N)C(=O)O")
@example("F/C=C/F")
@example("[NH3]->[Pt](<-[NH3])(Cl)Cl")
@example("C$C")
@example("*CC")
def test_any_rdkit_molecule_round_trips_or_is_rejected_with_a_reason(zinc_tok, smiles):
    assert to_mol(smiles) is not None  # the strategy only makes molecules RDKit accepts
    # a fixed vocabulary: one row or one failure with a reason, never an exception
    batch = zinc_tok.encode([smiles])
    assert len(batch) + len(batch.failures) == 1
    if len(batch.failures):
        reason = batch.failures["reason"].iloc[0]
        assert isinstance(reason, str) and reason
    # a vocabulary that holds the molecule's tokens: decoding gives back the standardized molecule
    try:
        tokens = smiles_to_tokens(smiles)
    except TokenizationError as err:
        assert err.reason and err.smiles == smiles
        return
    tok = SelfiesTokenizer(tokens, max_length=len(tokens))
    own = tok.encode([smiles])
    assert len(own) == 1 and own.failures.empty
    decoded = tok.decode(own.ids)[0]
    assert decoded is not None
    assert canonical(decoded) == canonical(standardize(smiles)), (smiles, standardize(smiles), decoded)


_SMILES_ALPHABET = "CNOSPFIBrcnos()[]=#$@+-0123456789%./\\Hl:*~ \t\n"
_ANYTHING = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=_SMILES_ALPHABET, max_size=80),
    st.none(),
    st.integers(),
    st.floats(),
    st.binary(max_size=20),
)


@FAST
@given(st.lists(_ANYTHING, max_size=6))
@example(["\ud800", "C\x00C", "\ufeffCCO", "C" * 500, "(((((", "[" * 100, "CCO garbage after a space"])
def test_encode_never_raises_on_arbitrary_input(zinc_tok, items):
    batch = zinc_tok.encode(items)
    assert len(batch) + len(batch.failures) == len(items)
    assert sorted([*batch.index.tolist(), *batch.failures["index"].tolist()]) == list(range(len(items)))
    assert all(isinstance(r, str) and r for r in batch.failures["reason"])
    for s in items:  # the single-molecule path raises only TokenizationError
        try:
            zinc_tok.encode_one(s)
        except TokenizationError as err:
            assert err.reason


def test_atom_mapped_smiles_round_trips_or_is_rejected():
    """It round-trips: the map number is dropped (standardize and SELFIES agree)."""
    smiles = "[CH3:1]C"
    tokens = smiles_to_tokens(smiles)
    assert tokens == ["[C]", "[C]"]  # the map number is not a token
    tok = SelfiesTokenizer(tokens, max_length=len(tokens))
    assert tok.decode(tok.encode(smiles).ids) == [standardize(smiles)] == ["CC"]


def test_inorganic_counter_ion_is_dropped_as_documented():
    assert standardize("C[NH3+].C[NH3+].[O-]S(=O)(=O)[O-]") == "C[NH3+]"


# Crashes RDKit's recursive SMILES writer with the default 8 MiB stack (20,000 does; 17,000 does not).
HUGE_CHAIN = 25_000


def _encode_huge(n_atoms: int):
    tok = SelfiesTokenizer(["[C]"], max_length=10)
    batch = tok.encode(["C" * n_atoms])
    return len(batch), batch.failures["reason"].tolist()


def test_a_10000_atom_chain_is_rejected_as_too_long():
    code, result = _in_forked_child(_encode_huge, 10_000)
    assert code == 0, f"the process died (exit code {code})"
    assert result[0] == "ok"
    n_ok, reasons = result[1]
    assert n_ok == 0 and reasons[0].startswith("too long")


@pytest.mark.slow  # RDKit needs ~30 s on this molecule before it crashes
def test_a_25000_atom_chain_does_not_crash_encode():
    code, result = _in_forked_child(_encode_huge, HUGE_CHAIN)
    assert code == 0, f"the process died (exit code {code})"
    assert result[0] == "ok" and result[1][0] == 0


# ============================================================================ properties
@FAST
@given(st.lists(_ANYTHING, max_size=8))
@example([None, float("nan"), b"CCO", 42, "", "   ", "C1CC", "CCO", "xyz"])
def test_compute_never_raises_and_gives_nan_for_unparsable_input(items):
    df = compute(items, PROPS, n_jobs=1)
    assert list(df.columns) == ["smiles", *PROPS] and len(df) == len(items)
    values = df[PROPS].to_numpy(dtype=float)
    for i, item in enumerate(items):
        if not isinstance(item, str) or canonical(item) is None:
            assert np.isnan(values[i]).all(), (item, values[i])
        else:
            assert np.isfinite(values[i, PROPS.index("mw")]), item


@FAST
@given(st.lists(rdkit_smiles(), min_size=1, max_size=4))
def test_compute_on_edited_molecules_is_finite_or_nan(smiles):
    df = compute(smiles, PROPS, n_jobs=1)
    values = df[PROPS].to_numpy(dtype=float)
    assert not np.isinf(values).any()
    assert np.isfinite(values[:, PROPS.index("mw")]).all()


OOD = {
    "salt": "CC(=O)[O-].[Na+]",
    "table salt": "[Na+].[Cl-]",
    "organometallic": "C[Fe]C",
    "cisplatin (fragments)": "N.N.Cl[Pt]Cl",
    "cisplatin (dative bonds)": "[NH3]->[Pt](<-[NH3])(Cl)Cl",
    "isotopes": "[13CH3]C(=O)O",
    "deuterium": "[2H]OC",
    "charges": "C[N+](C)(C)C",
    "stereo": "C[C@H](N)C(=O)O",
    "205 heavy atoms": "N" + "CC(=O)N" * 50 + "CC(=O)O",
    "radical": "[CH2]C",
    "dummy atom": "*CC",
}


def test_compute_on_out_of_distribution_molecules():
    df = compute(list(OOD.values()), PROPS, n_jobs=1)
    assert np.isfinite(df["mw"]).all()
    assert not np.isinf(df[PROPS].to_numpy(dtype=float)).any()


@pytest.mark.slow  # RDKit needs ~30 s on this molecule before it crashes
def test_compute_on_a_25000_atom_chain_does_not_crash():
    code, result = _in_forked_child(lambda: compute(["C" * HUGE_CHAIN], ["mw"], n_jobs=1)["mw"].tolist())
    assert code == 0, f"the process died (exit code {code})"
    assert result[0] == "ok"


# ============================================================================ out-of-distribution molecules
def test_model_encode_gives_nan_rows_with_reasons_for_what_it_cannot_represent(tiny_model):
    rejected = {
        "[Na+].[Cl-]": "tokens outside the vocabulary",  # the largest fragment ([Na+], a tie) is kept
        "C[Fe]C": "tokens outside the vocabulary",
        "N.N.Cl[Pt]Cl": "tokens outside the vocabulary",
        "[NH3]->[Pt](<-[NH3])(Cl)Cl": "SELFIES encoder error",
        OOD["205 heavy atoms"]: "too long",
        "*CC": "SELFIES encoder error",
        "not a smiles": "invalid SMILES",
        "": "empty or not a string",
    }
    accepted = {  # input -> the molecule the policy turns it into
        "[13CH3]C(=O)O": "CC(=O)O",
        "[2H]OC": "CO",
        "CC(=O)[O-].[Na+]": "CC(=O)[O-]",
        "C[NH3+].[Cl-]": "C[NH3+]",
        "C[C@H](N)C(=O)O": "C[C@H](N)C(=O)O",
    }
    smiles = [*rejected, *accepted, None]
    z = tiny_model.encode(smiles)
    assert z.shape == (len(smiles), tiny_model.latent_dim)
    nan_rows = np.flatnonzero(np.isnan(z).all(axis=1)).tolist()
    assert nan_rows == [*range(len(rejected)), len(smiles) - 1]
    assert np.isfinite(z[len(rejected) : -1]).all()
    failures = tiny_model.tokenizer.encode(smiles).failures.set_index("index")
    assert failures.index.tolist() == nan_rows
    for i, want in enumerate(rejected.values()):
        assert failures.loc[i, "reason"].startswith(want), (smiles[i], failures.loc[i, "reason"])
    # the policy, applied at encoding time: same latent point as the standardized molecule
    z_std = tiny_model.encode(list(accepted.values()))
    np.testing.assert_allclose(z[len(rejected) : -1], z_std, rtol=0, atol=1e-6)
    # stereo is kept: the enantiomer is encoded differently
    assert not np.array_equal(tiny_model.encode(["C[C@@H](N)C(=O)O"]), tiny_model.encode(["C[C@H](N)C(=O)O"]))


def test_training_drops_and_counts_what_encoding_rejects(tmp_path, cache_env, caplog):
    hostile = [
        "CC(=O)[O-].[Na+]", "[13CH3]C(=O)O", "[2H]OC", "C[C@H](N)C(=O)O", "[Na+].[Cl-]", "C[Fe]C", "N.N.Cl[Pt]Cl",
        "[NH3]->[Pt](<-[NH3])(Cl)Cl", OOD["205 heavy atoms"], "C" * 200, "*CC", "not a smiles", "", "   ",
    ]
    smiles = zinc(40) + hostile
    model_cfg = dataclasses.replace(TINY_MODEL, max_length=60)
    with caplog.at_level(logging.WARNING, logger="molvae.training"):
        model = train(smiles, tmp_path / "run", model_cfg, tiny_train_config(epochs=1, n_prior_samples=0), progress=False)
    assert all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point())
    (failures_csv,) = (cache_env / "tokens").glob("*/failures.csv")
    failures = pd.read_csv(failures_csv, keep_default_na=False)
    assert f"{len(failures)} of {len(smiles)} training molecules could not be tokenized" in caplog.text
    dropped = dict(zip(failures["smiles"], failures["reason"]))
    for s, why in [
        ("[NH3]->[Pt](<-[NH3])(Cl)Cl", "SELFIES encoder error"),
        (OOD["205 heavy atoms"], "too long"),
        ("C" * 200, "too long"),
        ("*CC", "SELFIES encoder error"),
        ("not a smiles", "invalid SMILES"),
        ("", "empty"),
        ("   ", "empty"),
    ]:
        assert dropped[s].startswith(why), (s, dropped.get(s))
    # the same policy at encoding time: the trained model rejects exactly the rows training dropped
    assert sorted(model.tokenizer.encode(smiles).failures["index"]) == sorted(failures["index"])
    # salts were reduced to their largest fragment and isotopes stripped before the vocabulary was fitted
    assert not [t for t in model.tokenizer.itos if t.startswith(("[2H", "[13", "[15", "[18"))]
    assert "CC(=O)O" in model.reconstruct(["[13CH3]C(=O)O"])["canonical"].tolist()


def test_training_drops_missing_values(tmp_path, cache_env, caplog):
    smiles = zinc(40) + [None, float("nan")]
    with caplog.at_level(logging.WARNING, logger="molvae.training"):
        model = train(smiles, tmp_path / "run", TINY_MODEL, tiny_train_config(epochs=1, n_prior_samples=0),
                      progress=False)
    assert "2 of 42 training molecules could not be tokenized" in caplog.text
    (failures_csv,) = (cache_env / "tokens").glob("*/failures.csv")
    failures = pd.read_csv(failures_csv, keep_default_na=False)
    assert failures["index"].tolist() == [40, 41]
    assert all(r.startswith("empty or not a string") for r in failures["reason"]), failures["reason"].tolist()
    split = np.load(tmp_path / "run" / "split.npz")
    assert sorted([*split["train"], *split["val"]]) == list(range(40))  # the 40 molecules, nothing else
    assert model.tokenizer == SelfiesTokenizer.fit(zinc(40), progress=False)
    assert all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point())


# ============================================================================ SMILES readers
def _random_bytes(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).bytes(n)


# name -> (file content, expected): ("ok", n_kept, n_rejected) or ("error",)
READER_CASES = {
    "crlf.csv": (b"smiles\r\nCCO\r\nc1ccccc1O\r\n", ("ok", 2, 0)),
    "crlf.smi": (b"CCO m1\r\nc1ccccc1O m2\r\n", ("ok", 2, 0)),
    "cr_only.smi": (b"CCO\rc1ccccc1O\r", ("ok", 2, 0)),
    "bom.csv": (b"\xef\xbb\xbfsmiles,name\nCCO,a\nc1ccccc1O,b\n", ("ok", 2, 0)),
    "bom.smi": (b"\xef\xbb\xbfCCO\nc1ccccc1O\n", ("ok", 2, 0)),
    "quoted.csv": (b'"id","smiles"\n"1","CCO"\n"2","C(""C"")"\n"3","c1ccccc1O"\n', ("ok", 2, 1)),
    "quoted_multiline_note.csv": (b'id,smiles,note\n1,CCO,"two\nlines"\n2,c1ccccc1O,x\n', ("ok", 2, 0)),
    "extra_columns.csv": (b"id,smiles\n1,CCO,extra,more\n2,c1ccccc1O\n3\n", ("ok", 2, 1)),
    "tab_and_spaces.tsv": (b"name\tsmiles\na b\tCCO\nc d\tc1ccccc1O\n", ("ok", 2, 0)),
    "non_utf8_row.smi": (b"CCO\nC\xff\xfeC\nc1ccccc1O\n", ("ok", 2, 1)),
    "non_utf8_row.csv": (b"smiles\nCCO\nC\xc3(C\nc1ccccc1O\n", ("ok", 2, 1)),
    "latin1_names.smi": (b"CCO caf\xe9\nc1ccccc1O na\xefve\n", ("ok", 2, 0)),
    "nul_byte.csv": (b"smiles\nCC\x00O\nCCO\n", ("ok", 1, 1)),
    "nul_byte.smi": (b"CC\x00O\nCCO\n", ("ok", 1, 1)),
    "garbage_rows.txt": (b"CCO\n)(\n[[[\nC1CC\nc1ccccc1O\n", ("ok", 2, 3)),
    "one_mb_line.smi": (b"C" * 1_000_000 + b"\nCCO\n", ("ok", 1, 1)),
    "one_mb_line.csv": (b"smiles\n" + b"C" * 1_000_000 + b"\nCCO\n", ("error",)),  # a field over 128 KiB
    "one_mb_line_only.smi": (b"C" * 1_000_000, ("error",)),
    "utf16.csv": ("smiles\nCCO\nc1ccccc1O\n".encode("utf-16"), ("error",)),
    "utf16.smi": ("CCO\nc1ccccc1O\n".encode("utf-16"), ("error",)),
    "random.csv": (_random_bytes(4000, 1), ("error",)),
    "random.smi": (_random_bytes(4000, 2), ("error",)),
    "random.tsv": (_random_bytes(4000, 3), ("error",)),
    "empty.csv": (b"", ("error",)),
    "whitespace.smi": (b"  \n\t\n\r\n", ("error",)),
    "only_header.csv": (b"smiles\n", ("error",)),
    "no_smiles_column.csv": (b"a,b\n1,2\n3,4\n", ("error",)),
    "all_invalid.smi": (b"foo\nbar\n", ("error",)),
    "gzip_of_garbage.smi.gz": (gzip.compress(_random_bytes(2000, 4)), ("error",)),
}


@pytest.mark.parametrize("name", list(READER_CASES))
def test_reader_and_tokenize_command_on_hostile_files(tmp_path, name):
    content, expected = READER_CASES[name]
    path = tmp_path / name
    path.write_bytes(content)
    # the library reader
    try:
        smiles = read_smiles(path)
        outcome = ("ok", len(smiles), smiles.n_rejected)
    except ValueError as err:
        assert str(path) in str(err), f"the message does not name the file: {err}"
        outcome = ("error",)
    # the command
    code, out, err = _tokenize_cli(path)
    if outcome[0] == "ok":
        assert code == 0, err
        assert smiles.n_read == outcome[1] + outcome[2]
        assert _counts(out) == (smiles.n_read, smiles.n_rejected)
        assert len(smiles.rejects) == outcome[2] and smiles.rejects["reason"].str.len().gt(0).all()
    else:
        _assert_clear_error(code, err, "tokenize", path)
    assert outcome == expected


def test_reader_reasons_for_skipped_rows(tmp_path):
    path = tmp_path / "mixed.smi"
    path.write_bytes(b"CCO\nC\xff\xfeC\n" + b"C" * 20_000 + b"\n)(\nc1ccccc1O\n")
    smiles = read_smiles(path, rejects=tmp_path / "rejects.csv")
    assert list(smiles) == ["CCO", "c1ccccc1O"]
    rejects = pd.read_csv(tmp_path / "rejects.csv")
    assert rejects["line"].tolist() == [2, 3, 4]
    assert rejects["reason"].tolist() == [
        "not valid UTF-8", "longer than 10000 characters", "invalid SMILES (RDKit cannot parse it)"
    ]


_PIECES = [
    b"CCO", b"c1ccccc1O", b"CC(=O)[O-].[Na+]", b"smiles", b"name", b"\n", b"\r\n", b"\r", b",", b"\t", b" ",
    b'"', b'""', b"\xef\xbb\xbf", b"\xff", b"\xc3", b"\x00", b"\x0c", b"\xc2\x85", b"(((", b"C" * 12_000,
]


@settings(FAST, max_examples=60)
@given(
    st.lists(st.one_of(st.sampled_from(_PIECES), st.binary(max_size=40)), max_size=30),
    st.sampled_from([".csv", ".tsv", ".smi", ".txt"]),
)
def test_reader_and_tokenize_command_never_raise_on_random_files(tmp_path_factory, pieces, suffix):
    path = tmp_path_factory.mktemp("random") / f"input{suffix}"
    path.write_bytes(b"".join(pieces))
    try:
        smiles = read_smiles(path)
        assert smiles.n_read == len(smiles) + smiles.n_rejected
    except ValueError as error:
        assert str(path) in str(error)
        smiles = None
    code, out, err = _tokenize_cli(path)
    if smiles is None:  # the reader refuses the file: so does the command, in one line
        _assert_clear_error(code, err, "tokenize", path)
        return
    n_tokenized = len(tokenize_file(list(smiles), cache=False, n_jobs=1, progress=False))
    if n_tokenized == 0:  # molecules RDKit reads but SELFIES cannot spell (e.g. "*")
        _assert_clear_error(code, err, "tokenize", path)
        assert "no molecule could be tokenized" in err
        return
    assert code == 0, err
    assert _counts(out) == (smiles.n_read, smiles.n_rejected)
    assert f"tokenized: {n_tokenized:,};" in out


def test_csv_with_a_leading_blank_line(tmp_path):
    path = tmp_path / "leading_blank.csv"
    path.write_bytes(b"\nsmiles\nCCO\nc1ccccc1O\n")
    smiles = read_smiles(path)
    assert list(smiles) == ["CCO", "c1ccccc1O"] and smiles.n_read == 2


def test_headerless_csv_keeps_its_first_molecule(tmp_path):
    path = tmp_path / "headerless.csv"
    path.write_bytes(b"CCO\nc1ccccc1O\nCCN\n")
    smiles = read_smiles(path)
    assert list(smiles) == ["CCO", "c1ccccc1O", "CCN"] and smiles.n_rejected == 0


def test_csv_with_an_unterminated_quote(tmp_path):
    """The quote runs to the end of the file: a clear error (no molecule made of several lines)."""
    path = tmp_path / "unterminated.csv"
    path.write_bytes(b'name,smiles\na,"CCO\nb,c1ccccc1O\nc,CCN\nd,CCC\n')
    with pytest.raises(ValueError, match=re.escape(f"{path}: not a readable CSV file (unexpected end of data)")):
        read_smiles(path)
    code, _, err = _tokenize_cli(path)
    _assert_clear_error(code, err, "tokenize", path)


@pytest.mark.parametrize("separator", [b"\x0c", b"\xc2\x85", b"\xe2\x80\xa8"])
def test_smi_line_numbers_count_physical_lines(tmp_path, separator):
    path = tmp_path / "odd_whitespace.smi"
    path.write_bytes(b"CCO" + separator + b"name\nc1ccccc1O\nnot_a_smiles\n")
    smiles = read_smiles(path)
    assert smiles.n_read == 3
    assert smiles.rejects["line"].tolist() == [3]


@pytest.mark.parametrize("kind", ["not_gzip", "truncated_gzip", "directory"])
def test_unreadable_files_give_a_clear_error(tmp_path, kind):
    if kind == "directory":
        path = tmp_path / "folder.smi"
        path.mkdir()
    else:
        path = tmp_path / "mols.smi.gz"
        lines = "\n".join(zinc(500)).encode()
        path.write_bytes(b"plain text, not gzip" if kind == "not_gzip" else gzip.compress(lines)[:2000])
    code, _, err = _tokenize_cli(path)
    _assert_clear_error(code, err, "tokenize", path)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        read_smiles(path)


def test_tokenize_with_a_vocabulary_nothing_fits(tmp_path):
    vocab = tmp_path / "vocab.json"
    SelfiesTokenizer.fit(["CCO", "CCC"], progress=False).save(vocab)
    path = tmp_path / "metals.smi"
    path.write_text("C[Fe]C\n[Na+].[Cl-]\nc1ccccc1O\n")
    code, out, err = _tokenize_cli(path, "--vocab", str(vocab))
    _assert_clear_error(code, err, "tokenize", path)
    assert "no molecule could be tokenized with this vocabulary" in err


def test_tokenize_with_a_broken_vocabulary_file(tmp_path):
    path = tmp_path / "mols.smi"
    path.write_text("CCO\nc1ccccc1O\n")
    for i, text in enumerate(["{not json", json.dumps({"format": "something else"}), json.dumps([1, 2])]):
        vocab = tmp_path / f"vocab{i}.json"
        vocab.write_text(text)
        code, _, err = _tokenize_cli(path, "--vocab", str(vocab))
        _assert_clear_error(code, err, "tokenize")


# ============================================================================ checkpoints
def _zip_record_offset(path: Path) -> int:
    """Offset of the middle byte of the largest tensor record in a torch zip checkpoint."""
    with zipfile.ZipFile(path) as zf:
        info = max((i for i in zf.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    raw = path.read_bytes()
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])
    return info.header_offset + 30 + name_len + extra_len + info.file_size // 2


def _foreign_files(tmp: Path, good: Path) -> dict[str, Path]:
    raw = good.read_bytes()
    files: dict[str, Path] = {}

    def put(name: str, data: bytes) -> None:
        files[name] = tmp / name
        files[name].write_bytes(data)

    put("zero_bytes.pt", b"")
    for frac in (0.001, 0.1, 0.5, 0.9):
        put(f"truncated_{frac}.pt", raw[: max(1, int(len(raw) * frac))])
    put("truncated_last_byte.pt", raw[:-1])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("readme.txt", "a zip file, not a checkpoint")
    put("zip_file.pt", buf.getvalue())
    buf = io.BytesIO()
    np.save(buf, np.arange(12.0).reshape(3, 4))
    put("numpy.pt", buf.getvalue())
    put("json.pt", json.dumps({"format": "molvae-checkpoint", "format_version": 1}).encode())
    put("text.pt", b"these are not weights\n")
    put("random.pt", _random_bytes(5000, 7))
    put("gzip.pt", gzip.compress(raw))
    buf = io.BytesIO()
    torch.save({"model": torch.zeros(3)}, buf)
    put("foreign_torch_dict.pt", buf.getvalue())
    buf = io.BytesIO()
    torch.save(torch.zeros(3), buf)
    put("bare_tensor.pt", buf.getvalue())
    put("plain_pickle.pt", pickle.dumps({"format": "molvae-checkpoint", "format_version": 1}, protocol=2))
    return files


def test_foreign_and_damaged_files_are_refused_with_checkpoint_error(ckpt_file, tmp_path):
    for name, path in _foreign_files(tmp_path, ckpt_file).items():
        with pytest.raises(CheckpointError) as info:
            MolVAE.load(path, device="cpu")
        msg = str(info.value)
        assert str(path) in msg, (name, msg)
        assert any(w in msg for w in ("not a molvae checkpoint", "not a readable checkpoint", "empty")), (name, msg)


def test_foreign_and_damaged_files_give_a_clear_cli_error(ckpt_file, tmp_path):
    files = _foreign_files(tmp_path, ckpt_file)
    for name in ("zero_bytes.pt", "truncated_0.5.pt", "zip_file.pt", "numpy.pt", "json.pt", "foreign_torch_dict.pt"):
        code, _, err = _cli(["sample", "--model", str(files[name]), "-n", "2", "-q"])
        _assert_clear_error(code, err, "sample", files[name])


def _future(raw: dict) -> None:
    raw["format_version"] = 2


def _future_tokenizer(raw: dict) -> None:
    raw["tokenizer"]["version"] = 99


def test_newer_format_versions_are_refused(ckpt_file, tmp_path):
    raw = torch.load(ckpt_file, weights_only=True)
    for name, change, words in [("future.pt", _future, ["version 2", "upgrade molvae"]),
                                ("future_tokenizer.pt", _future_tokenizer, ["version 99", "upgrade molvae"])]:
        data = copy.deepcopy(raw)
        change(data)
        path = tmp_path / name
        torch.save(data, path)
        with pytest.raises(CheckpointError) as info:
            MolVAE.load(path, device="cpu")
        assert all(w in str(info.value) for w in words), str(info.value)


@pytest.mark.parametrize("version", [None, "1"])
def test_missing_format_version_is_not_called_newer(ckpt_file, tmp_path, version):
    raw = torch.load(ckpt_file, weights_only=True)
    if version is None:
        del raw["format_version"]
    else:
        raw["format_version"] = version
    path = tmp_path / "no_version.pt"
    torch.save(raw, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert "newer" not in str(info.value) and "upgrade" not in str(info.value)


def _leave_marker(path: str) -> dict:
    """Runs only when a pickle is loaded with full unpickling: the marker file is the evidence."""
    Path(path).write_text("code from the checkpoint ran")
    return {}


class _ReducePayload:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (_leave_marker, (self.marker,))


class _SystemPayload:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _SetstatePayload:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __setstate__(self, state):
        Path(state["marker"]).write_text("code from the checkpoint ran")


@pytest.mark.parametrize("payload", [_ReducePayload, _SystemPayload, _SetstatePayload])
@pytest.mark.parametrize("container", ["torch_zip", "torch_legacy", "plain_pickle", "inside_state_dict"])
def test_checkpoint_carrying_code_is_refused_and_never_run(ckpt_file, tmp_path, payload, container):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.pt"
    evil = payload(marker)
    if container == "inside_state_dict":
        data = torch.load(ckpt_file, weights_only=True)
        data["state_dict"]["output.bias"] = evil
        torch.save(data, path)
    else:
        data = {"format": "molvae-checkpoint", "format_version": 1, "x": evil}
        if container == "torch_zip":
            torch.save(data, path)
        elif container == "torch_legacy":
            torch.save(data, path, _use_new_zipfile_serialization=False)
        else:
            path.write_bytes(pickle.dumps(data))
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="refusing to unpickle"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError):
        MolVAE.load(path, device="cpu")
    code, _, err = _cli(["sample", "--model", str(path), "-n", "2", "-q"])
    _assert_clear_error(code, err, "sample", path)
    assert not marker.exists(), "code carried by the checkpoint ran while loading it"


def test_the_marker_payload_is_live(tmp_path):
    """The check above means something: a full unpickle does run the payload."""
    marker = tmp_path / "marker.txt"
    pickle.loads(pickle.dumps(_ReducePayload(marker)))
    assert marker.exists()


def _state_entry_int(raw):
    raw["state_dict"]["output.weight"] = 5


def _state_dict_list(raw):
    raw["state_dict"] = [1, 2]


def _metadata_str(raw):
    raw["metadata"] = "abc"


def _metadata_list(raw):
    raw["metadata"] = [1, 2]


@pytest.mark.parametrize("change", [_state_entry_int, _state_dict_list, _metadata_str, _metadata_list])
def test_malformed_checkpoint_content_is_refused(ckpt_file, tmp_path, change):
    raw = torch.load(ckpt_file, weights_only=True)
    change(raw)
    path = tmp_path / "malformed.pt"
    torch.save(raw, path)
    with pytest.raises(CheckpointError):  # today: the exception types named in the xfail escape
        MolVAE.load(path, device="cpu")


def test_a_flipped_byte_inside_the_weights_is_detected(ckpt_file, tmp_path):
    raw = bytearray(ckpt_file.read_bytes())
    raw[_zip_record_offset(ckpt_file)] ^= 0xFF
    path = tmp_path / "bitrot.pt"
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError):
        MolVAE.load(path, device="cpu")


def _legacy_with_unknown_storage_key(ckpt_file: Path) -> bytes:
    """The checkpoint in torch's legacy (non-zip) format, one digit of a storage key changed."""
    buf = io.BytesIO()
    torch.save(torch.load(ckpt_file, weights_only=True), buf, _use_new_zipfile_serialization=False)
    raw = bytearray(buf.getvalue())
    key = re.search(rb"\d{6,}", raw).group()  # the first storage key (its id, in decimal)
    where = [m.start() for m in re.finditer(re.escape(key), raw)]
    assert len(where) >= 2  # in the object pickle and in the list of keys after it
    pos = where[-1] + len(key) - 1
    raw[pos] = ord("0") + (raw[pos] - ord("0") + 1) % 10
    return bytes(raw)


@pytest.mark.parametrize("kind", ["memo_get", "short_int", "legacy_storage_key"])
def test_damaged_pickle_streams_raise_checkpoint_error(ckpt_file, tmp_path, kind):
    content = {"memo_get": b"h\x00.", "short_int": b"J\x00"}.get(kind) or _legacy_with_unknown_storage_key(ckpt_file)
    path = tmp_path / f"{kind}.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError):
        MolVAE.load(path, device="cpu")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("damaged")


@settings(FAST, max_examples=100)
@given(st.data())
def test_damaged_checkpoint_files_raise_only_checkpoint_error(ckpt_file, scratch, data):
    """Truncated, overwritten, zeroed, shortened or lengthened anywhere: CheckpointError, or
    (damage inside tensor bytes, see the CRC case above) a model that loads; nothing else."""
    raw = bytearray(ckpt_file.read_bytes())
    kind = data.draw(st.sampled_from(["truncate", "overwrite", "zero", "insert", "delete"]))
    pos = data.draw(st.integers(0, len(raw) - 1))
    n = data.draw(st.integers(1, 64))
    if kind == "truncate":
        raw = raw[:pos]
    elif kind == "overwrite":
        raw[pos : pos + n] = data.draw(st.binary(min_size=n, max_size=n))
    elif kind == "zero":
        raw[pos : pos + n] = bytes(len(raw[pos : pos + n]))
    elif kind == "insert":
        raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=n))
    else:
        del raw[pos : pos + n]
    path = scratch / "damaged.pt"
    path.write_bytes(bytes(raw))
    try:
        model = MolVAE.load(path, device="cpu")
    except CheckpointError:
        return
    # it loads only when the damage missed everything read (zip padding, unused header fields):
    # then it is the saved model, to the last weight
    original = MolVAE.load(ckpt_file, device="cpu")
    assert model.tokenizer == original.tokenizer and model.config == original.config
    state, want = model.state_dict(), original.state_dict()
    assert set(state) == set(want) and all(torch.equal(state[k], want[k]) for k in want)


def test_inconsistent_but_well_typed_content_is_refused(ckpt_file, tmp_path):
    raw = torch.load(ckpt_file, weights_only=True)
    changes = {
        "wrong_shape": lambda r: r["state_dict"].__setitem__("output.weight", torch.zeros(3, 3)),
        "missing_weight": lambda r: r["state_dict"].pop("output.weight"),
        "negative_size": lambda r: r["model_config"].__setitem__("embedding_dim", -3),
        "unknown_config_key": lambda r: r["model_config"].__setitem__("layers_of_magic", 3),
        "tokens_not_a_list": lambda r: r["tokenizer"].__setitem__("tokens", 5),
        "max_length_not_a_number": lambda r: r["tokenizer"].__setitem__("max_length", "long"),
        "no_tokenizer": lambda r: r.pop("tokenizer"),
        "tokenizer_not_a_dict": lambda r: r.__setitem__("tokenizer", [1, 2]),
    }
    for name, change in changes.items():
        data = copy.deepcopy(raw)
        change(data)
        path = tmp_path / f"{name}.pt"
        torch.save(data, path)
        with pytest.raises(CheckpointError, match="inconsistent"):
            MolVAE.load(path, device="cpu")
