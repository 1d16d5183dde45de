"""Molecules: parsing, canonical SMILES, standardization (``molecules``), Morgan fingerprints and Tanimoto similarity (``fingerprints``)."""

from molvae.chem.molecules import MAX_SMILES_LENGTH, canonical, heavy_atoms, is_valid, quiet_rdkit, standardize, to_mol

__all__ = ["MAX_SMILES_LENGTH", "quiet_rdkit", "to_mol", "canonical", "standardize", "heavy_atoms", "is_valid"]
