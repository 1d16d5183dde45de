"""The MOSES MCF/PAINS filters (molvae.metrics.filters)."""

from __future__ import annotations

import csv

import pytest
from metrics_molecules import REF, TRAIN
from rdkit import Chem

from molvae.data import load_dataset
from molvae.metrics import filters
from molvae.utils.paths import data_dir


@pytest.mark.parametrize(
    "smiles, passes",
    [
        (TRAIN[2], True),  # a clean MOSES training molecule
        (REF[0], True),
        ("C[N+](C)(C)Cc1ccccc1", False),  # charged atom
        ("Ic1ccc(CC(=O)O)cc1", False),  # iodine
        ("S=C1SC(=Cc2ccccc2)C(=O)N1", False),  # PAINS ene_rhod_A
        ("Oc1ccc(CCN)cc1O", False),  # PAINS catechol_A
        ("C=CC#N", False),  # MCF1
        ("O=C1CCCCCCN1", False),  # 8-membered ring
        ("O=C1CCCCCN1", True),  # 7-membered ring is fine
        ("xyz", False),
        (None, False),
    ],
)
def test_mol_passes_filters(smiles, passes):
    assert filters.mol_passes_filters(smiles) is passes


def test_accepts_a_mol():
    assert filters.mol_passes_filters(Chem.MolFromSmiles(TRAIN[2])) is True


def test_moses_training_molecules_pass():
    """MOSES built its sets with these filters: its molecules pass them all."""
    moses = load_dataset("moses", "train", limit=300) + load_dataset("moses", "test", limit=200)
    assert all(filters.mol_passes_filters(s) for s in moses)


def test_zinc_has_molecules_that_fail():
    zinc = load_dataset("zinc", "test", limit=400)
    failing = [s for s in zinc if not filters.mol_passes_filters(s)]
    assert 0.25 < len(failing) / len(zinc) < 0.5  # measured 0.375: ZINC is unfiltered, MOSES is not
    charged = [s for s in zinc if "+" in s or "-]" in s]
    assert charged and all(s in failing for s in charged)


def test_filter_patterns_are_all_smarts_of_the_files():
    folder = data_dir() / "moses" / "filters"
    with open(folder / "mcf.csv", newline="") as fh:
        n_mcf = sum(1 for _ in csv.DictReader(fh))
    with open(folder / "wehi_pains.csv", newline="") as fh:
        n_pains = sum(1 for row in csv.reader(fh) if row and row[0].strip())
    patterns = filters.filter_patterns()
    assert len(patterns) == n_mcf + n_pains
    assert patterns is filters.filter_patterns()  # compiled once
    assert all(isinstance(p, Chem.Mol) for p, _ in patterns)
