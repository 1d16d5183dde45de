"""Tests for molvae.chem (RDKit helpers that return None instead of raising)."""

from __future__ import annotations

import pytest
from rdkit import Chem, RDLogger, rdBase

from molvae.chem import canonical, heavy_atoms, is_valid, quiet_rdkit, standardize, to_mol

BAD_INPUTS = [None, "", "   ", "xyz", "C1CC", "C(C", 42, 3.5, b"CCO", ["CCO"]]


def _log_status() -> dict[str, bool]:
    """{'rdApp.error': True, ...} from RDKit's own log switchboard."""
    status = {}
    for line in rdBase.LogStatus().splitlines():
        name, _, state = line.partition(":")
        status[name.strip()] = state.strip() == "enabled"
    return status


@pytest.fixture
def restore_rdkit_log():
    """Put RDKit's log back to its default (error + warning on) whatever a test did to it."""
    yield
    RDLogger.EnableLog("rdApp.error")
    RDLogger.EnableLog("rdApp.warning")
    RDLogger.DisableLog("rdApp.info")
    RDLogger.DisableLog("rdApp.debug")


# ----------------------------------------------------------------------------- to_mol / canonical
@pytest.mark.parametrize("bad", BAD_INPUTS, ids=repr)
def test_bad_input_gives_none_not_an_exception(bad):
    assert to_mol(bad) is None
    assert canonical(bad) is None
    assert standardize(bad) is None
    assert heavy_atoms(bad) is None
    assert is_valid(bad) is False


def test_to_mol_parses_and_strips_whitespace():
    mol = to_mol("  CCO\n")
    assert mol is not None
    assert mol.GetNumAtoms() == 3
    assert heavy_atoms("c1ccccc1O") == 7
    assert is_valid("c1ccccc1O") is True


@pytest.mark.parametrize(
    "spellings",
    [
        ["CCO", "OCC", "C(O)C", "[CH3][CH2][OH]"],
        ["c1ccccc1", "C1=CC=CC=C1", "C1C=CC=CC=1"],
        ["CC(=O)Oc1ccccc1C(=O)O", "OC(=O)c1ccccc1OC(C)=O", "O=C(O)c1c(OC(C)=O)cccc1"],
        ["N[C@@H](C)C(=O)O", "C[C@H](N)C(=O)O", "OC(=O)[C@H](C)N"],
    ],
)
def test_canonical_is_spelling_independent(spellings):
    forms = {canonical(s) for s in spellings}
    assert len(forms) == 1, forms
    (form,) = forms
    assert form is not None
    assert canonical(form) == form  # canonical of canonical is itself


def test_canonical_keeps_stereo_unless_asked_not_to():
    assert canonical("C[C@H](N)C(=O)O") != canonical("C[C@@H](N)C(=O)O")
    assert canonical("C[C@H](N)C(=O)O", isomeric=False) == canonical("CC(N)C(=O)O")
    assert "@" not in canonical("C[C@H](N)C(=O)O", isomeric=False)


# ----------------------------------------------------------------------------- quiet_rdkit
def test_quiet_rdkit_silences_parse_errors_inside_the_block_only(capfd):
    with quiet_rdkit():
        assert Chem.MolFromSmiles("C1CC") is None
    assert capfd.readouterr().err == ""
    # outside the block RDKit speaks again
    assert Chem.MolFromSmiles("C1CC") is None
    assert "C1CC" in capfd.readouterr().err


def test_to_mol_is_quiet(capfd):
    assert to_mol("C1CC") is None
    assert to_mol("xyz") is None
    assert canonical("C(C") is None
    assert capfd.readouterr().err == ""


def test_quiet_rdkit_is_a_context_manager_that_restores_logging_after_an_error(restore_rdkit_log):
    with pytest.raises(RuntimeError):
        with quiet_rdkit():
            assert _log_status()["rdApp.error"] is False
            raise RuntimeError("boom")
    status = _log_status()
    assert status["rdApp.error"] is True
    assert status["rdApp.warning"] is True


def test_quiet_rdkit_restores_the_previous_log_state(restore_rdkit_log):
    RDLogger.DisableLog("rdApp.*")
    assert to_mol("CCO") is not None
    status = _log_status()
    assert status["rdApp.error"] is False
    assert status["rdApp.warning"] is False


# ----------------------------------------------------------------------------- standardize
@pytest.mark.parametrize(
    "smiles, expected",
    [
        ("CC(=O)[O-].[Na+]", "CC(=O)[O-]"),
        ("[Na+].CC(=O)[O-]", "CC(=O)[O-]"),
        ("c1ccccc1.O.O", "c1ccccc1"),
        ("Cl.CN(C)CCC=C1c2ccccc2CCc2ccccc21", canonical("CN(C)CCC=C1c2ccccc2CCc2ccccc21")),
        ("[13CH3]C(=O)O", "CC(=O)O"),
        ("[13CH3][15NH2]", "CN"),
        ("C[C@H](N)C(=O)O", canonical("C[C@H](N)C(=O)O")),  # stereo kept
        ("C[NH3+]", "C[NH3+]"),  # charges kept
        ("OCC", "CCO"),  # canonical output
    ],
)
def test_standardize_policy(smiles, expected):
    assert standardize(smiles) == expected


def test_standardize_fragment_choice_does_not_depend_on_fragment_order():
    # equal heavy-atom counts: the tie is broken by SMILES, not by position
    assert standardize("[Na+].[Cl-]") == standardize("[Cl-].[Na+]")
    assert standardize("CCO.CCN") == standardize("CCN.CCO")


def test_standardize_options_can_be_switched_off():
    assert standardize("CC(=O)[O-].[Na+]", largest_fragment=False) == canonical("CC(=O)[O-].[Na+]")
    assert "13" in standardize("[13CH3]C(=O)O", strip_isotopes=False)


def test_standardize_is_idempotent_on_ordinary_molecules():
    for smi in ["CC(=O)[O-].[Na+]", "[13CH3]C(=O)O", "C/C=C/C(=O)O", "O=C([O-])c1ccccc1.[K+]"]:
        once = standardize(smi)
        assert standardize(once) == once
        assert canonical(once) == once


def test_standardize_strips_deuterium_to_the_plain_molecule():
    assert standardize("[2H]C([2H])([2H])O") == "CO"
    assert standardize("[2H]OC") == "CO"
