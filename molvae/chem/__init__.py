"""Molecules: parsing, canonical SMILES, standardization (``molecules``), Morgan fingerprints and Tanimoto similarity (``fingerprints``)."""

from molvae.chem.molecules import (
    MAX_SMILES_LENGTH,
    canonical,
    canonical_many,
    canonical_set,
    heavy_atoms,
    is_valid,
    kept_rdkit_log,
    quiet_rdkit,
    standardize,
    to_mol,
)

from molvae.chem.molecules import __all__ as _molecules_all

__all__ = list(_molecules_all)  # the fingerprints live in molvae.chem.fingerprints
