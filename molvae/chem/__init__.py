"""Molecules: parsing, canonical SMILES, standardization (``molecules``), Morgan fingerprints and Tanimoto similarity (``fingerprints``)."""

from molvae.chem.molecules import (
    MAX_SMILES_LENGTH,
    canonical,
    canonical_many,
    canonical_set,
    heavy_atoms,
    is_valid,
    kept_rdkit_log,
    mol_smiles,
    quiet_rdkit,
    standardize,
    to_mol,
)

# (the fingerprints live in molvae.chem.fingerprints)
__all__ = ["MAX_SMILES_LENGTH", "quiet_rdkit", "kept_rdkit_log", "to_mol", "mol_smiles", "canonical", "canonical_many",
           "canonical_set", "standardize", "heavy_atoms", "is_valid"]
